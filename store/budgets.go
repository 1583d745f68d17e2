package store

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/bot-bottle/bottlecap/budget"
)

// PutBudget sets runtime limits at a scope; providers not in limits keep
// their limits. Scope must be global, bottle or agent (a parent's budget is
// its own bottle budget) and limits must not be negative.
func (db *DB) PutBudget(ctx context.Context, scope budget.ScopeKind, id string, limits budget.Limits) error {
	what := fmt.Sprintf("put budget %s/%s", scope, id)
	if _, err := budget.ParseScopeKind(string(scope)); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if id == "" {
		return fmt.Errorf("%s: %w: id is required", what, budget.ErrInvalid)
	}
	for p, n := range limits {
		if n < 0 {
			return fmt.Errorf("%s: %w: %s limit must not be negative (got %d)", what, budget.ErrInvalid, p, n)
		}
	}
	return db.update(ctx, what, func(tx *sql.Tx) error {
		return putBudget(ctx, tx, scope, id, limits)
	})
}

func putBudget(ctx context.Context, tx *sql.Tx, scope budget.ScopeKind, id string, limits budget.Limits) error {
	for p, n := range limits {
		_, err := tx.ExecContext(ctx, `INSERT INTO budgets (scope, id, provider, tokens) VALUES (?, ?, ?, ?)
			ON CONFLICT (scope, id, provider) DO UPDATE SET tokens = excluded.tokens`,
			string(scope), id, p, n)
		if err != nil {
			return err
		}
	}
	return nil
}

// Budgets returns every runtime budget, ordered by scope and id.
func (db *DB) Budgets(ctx context.Context) ([]budget.ScopeBudget, error) {
	rows, err := db.read.QueryContext(ctx,
		`SELECT scope, id, provider, tokens FROM budgets ORDER BY scope, id, provider`)
	if err != nil {
		return nil, fmt.Errorf("budgets: %w", classify(err))
	}
	defer rows.Close()
	var all []budget.ScopeBudget
	for rows.Next() {
		var scope, id, provider string
		var tokens int64
		if err := rows.Scan(&scope, &id, &provider, &tokens); err != nil {
			return nil, fmt.Errorf("budgets: %w", classify(err))
		}
		last := len(all) - 1
		if last < 0 || all[last].Scope != budget.ScopeKind(scope) || all[last].ID != id {
			all = append(all, budget.ScopeBudget{Scope: budget.ScopeKind(scope), ID: id, Limits: budget.Limits{}})
			last++
		}
		all[last].Limits[provider] = tokens
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("budgets: %w", classify(err))
	}
	return all, nil
}

// MarkWarned records that the warn threshold of (scope, id, provider) was
// crossed; first is true only the first time, so the warn event is recorded
// once.
func (db *DB) MarkWarned(ctx context.Context, scope budget.ScopeKind, id, provider string) (first bool, err error) {
	what := fmt.Sprintf("mark warned %s/%s/%s", scope, id, provider)
	err = db.update(ctx, what, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO warn_markers (scope, id, provider, warned_at)
			VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`, string(scope), id, provider, db.now())
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		first = n == 1
		return err
	})
	return first, err
}

// ClearWarned forgets the warn markers of a scope, so a budget that rose
// warns again when the new threshold is crossed.
func (db *DB) ClearWarned(ctx context.Context, scope budget.ScopeKind, id string) error {
	return db.update(ctx, fmt.Sprintf("clear warned %s/%s", scope, id), func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM warn_markers WHERE scope = ? AND id = ?`, string(scope), id)
		return err
	})
}
