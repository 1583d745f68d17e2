package store

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/bot-bottle/bottlecap/budget"
)

const actionColumns = `id, bottle, kind, reason, operator, status, attempts, last_error, created_at, updated_at`

// CreateAction journals an action before it runs. An empty status is
// pending; the returned Action has its ID and times filled in.
func (db *DB) CreateAction(ctx context.Context, a budget.Action) (budget.Action, error) {
	if a.Status == "" {
		a.Status = budget.StatusPending
	}
	if err := validateAction(a); err != nil {
		return budget.Action{}, fmt.Errorf("create action: %w", err)
	}
	now := db.now()
	a.CreatedAt, a.UpdatedAt = fromNanos(now), fromNanos(now)
	err := db.update(ctx, fmt.Sprintf("create %s action on %s", a.Kind, a.Bottle), func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO actions
			(bottle, kind, reason, operator, status, attempts, last_error, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			a.Bottle, string(a.Kind), a.Reason, a.Operator, string(a.Status), a.Attempts, a.LastError, now, now)
		if err != nil {
			return err
		}
		a.ID, err = res.LastInsertId()
		return err
	})
	if err != nil {
		return budget.Action{}, err
	}
	return a, nil
}

func validateAction(a budget.Action) error {
	if a.Bottle == "" {
		return fmt.Errorf("%w: bottle is required", budget.ErrInvalid)
	}
	if _, err := budget.ParseActionKind(string(a.Kind)); err != nil {
		return err
	}
	switch a.Status {
	case budget.StatusPending, budget.StatusDone, budget.StatusFailed:
		return nil
	}
	return fmt.Errorf("%w: action status %q: want pending, done or failed", budget.ErrInvalid, a.Status)
}

// UpdateAction records an attempt's outcome: status, attempts and last
// error (the rest of a journaled action does not change). An unknown ID is
// an error wrapping budget.ErrNotFound.
func (db *DB) UpdateAction(ctx context.Context, a budget.Action) error {
	what := fmt.Sprintf("update action %d", a.ID)
	switch a.Status {
	case budget.StatusPending, budget.StatusDone, budget.StatusFailed:
	default:
		return fmt.Errorf("%s: %w: status %q: want pending, done or failed", what, budget.ErrInvalid, a.Status)
	}
	return db.update(ctx, what, func(tx *sql.Tx) error {
		return mustChange(tx.ExecContext(ctx,
			`UPDATE actions SET status = ?, attempts = ?, last_error = ?, updated_at = ? WHERE id = ?`,
			string(a.Status), a.Attempts, a.LastError, db.now(), a.ID))
	})
}

// Action returns one journaled action, or an error wrapping
// budget.ErrNotFound: what `bottlecap cutoff --wait` follows.
func (db *DB) Action(ctx context.Context, id int64) (budget.Action, error) {
	row := db.read.QueryRowContext(ctx, `SELECT `+actionColumns+` FROM actions WHERE id = ?`, id)
	a, err := scanAction(row)
	if err != nil {
		return a, fmt.Errorf("action %d: %w", id, classify(err))
	}
	return a, nil
}

// scanAction reads one row of actionColumns.
func scanAction(row interface{ Scan(...any) error }) (budget.Action, error) {
	var a budget.Action
	var kind, st string
	var created, updated int64
	if err := row.Scan(&a.ID, &a.Bottle, &kind, &a.Reason, &a.Operator, &st, &a.Attempts,
		&a.LastError, &created, &updated); err != nil {
		return a, err
	}
	a.Kind, a.Status = budget.ActionKind(kind), budget.ActionStatus(st)
	a.CreatedAt, a.UpdatedAt = fromNanos(created), fromNanos(updated)
	return a, nil
}

// Actions returns the actions with the given status ("" = all), oldest
// first, so a restarted daemon resumes pending ones in order.
func (db *DB) Actions(ctx context.Context, status budget.ActionStatus) ([]budget.Action, error) {
	q := `SELECT ` + actionColumns + ` FROM actions`
	var args []any
	if status != "" {
		q += ` WHERE status = ?`
		args = append(args, string(status))
	}
	rows, err := db.read.QueryContext(ctx, q+` ORDER BY id`, args...)
	if err != nil {
		return nil, fmt.Errorf("actions: %w", classify(err))
	}
	defer rows.Close()
	var all []budget.Action
	for rows.Next() {
		a, err := scanAction(rows)
		if err != nil {
			return nil, fmt.Errorf("actions: %w", classify(err))
		}
		all = append(all, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("actions: %w", classify(err))
	}
	return all, nil
}

// PutMemo stores value under (bottle, key), replacing any previous value.
func (db *DB) PutMemo(ctx context.Context, bottle, key string, value []byte) error {
	if value == nil {
		value = []byte{}
	}
	return db.update(ctx, fmt.Sprintf("put memo %s/%s", bottle, key), func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO memos (bottle, key, value) VALUES (?, ?, ?)
			ON CONFLICT (bottle, key) DO UPDATE SET value = excluded.value`, bottle, key, value)
		return err
	})
}

// Memo returns the value under (bottle, key), or an error wrapping
// budget.ErrNotFound.
func (db *DB) Memo(ctx context.Context, bottle, key string) ([]byte, error) {
	var value []byte
	err := db.read.QueryRowContext(ctx, `SELECT value FROM memos WHERE bottle = ? AND key = ?`, bottle, key).Scan(&value)
	if err != nil {
		return nil, fmt.Errorf("memo %s/%s: %w", bottle, key, classify(err))
	}
	return value, nil
}

// DeleteMemo forgets (bottle, key). Deleting a missing memo is not an error:
// a restore that is retried after it already cleaned up must succeed.
func (db *DB) DeleteMemo(ctx context.Context, bottle, key string) error {
	return db.update(ctx, fmt.Sprintf("delete memo %s/%s", bottle, key), func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM memos WHERE bottle = ? AND key = ?`, bottle, key)
		return err
	})
}
