package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

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
	for p, set := range limits {
		if _, err := budget.NewLimitSet(set...); err != nil {
			return fmt.Errorf("%s: %s: %w", what, p, err)
		}
	}
	return db.update(ctx, what, func(tx *sql.Tx) error {
		return putBudget(ctx, tx, scope, id, limits)
	})
}

func putBudget(ctx context.Context, tx *sql.Tx, scope budget.ScopeKind, id string, limits budget.Limits) error {
	for p, set := range limits {
		tokens, written := lifetimeTokens(set), ""
		if set.Windowed() || len(set) != 1 {
			written = set.String()
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO budgets (scope, id, provider, tokens, limits) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (scope, id, provider) DO UPDATE SET tokens = excluded.tokens, limits = excluded.limits`,
			string(scope), id, p, tokens, written)
		if err != nil {
			return err
		}
	}
	return nil
}

// DeleteBudget removes the runtime limits of the given providers at a
// scope (what they overrode is in force again). Providers with no runtime
// limit there are no error: removing twice is removing once.
func (db *DB) DeleteBudget(ctx context.Context, scope budget.ScopeKind, id string, providers ...string) error {
	return db.update(ctx, fmt.Sprintf("delete budget %s/%s", scope, id), func(tx *sql.Tx) error {
		for _, p := range providers {
			_, err := tx.ExecContext(ctx, `DELETE FROM budgets WHERE scope = ? AND id = ? AND provider = ?`, string(scope), id, p)
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// lifetimeTokens is the set's lifetime limit, or 0.
func lifetimeTokens(set budget.LimitSet) int64 {
	for _, l := range set {
		if l.Window == budget.LifeWindow {
			return l.Tokens
		}
	}
	return 0
}

// Budgets returns every runtime limit, grouped by scope and ordered by
// scope and id.
func (db *DB) Budgets(ctx context.Context) ([]budget.ScopeBudget, error) {
	rows, err := db.read.QueryContext(ctx,
		`SELECT scope, id, provider, tokens, limits FROM budgets ORDER BY scope, id, provider`)
	if err != nil {
		return nil, fmt.Errorf("budgets: %w", classify(err))
	}
	defer rows.Close()
	var all []budget.ScopeBudget
	for rows.Next() {
		var scope, id, provider, written string
		var tokens int64
		if err := rows.Scan(&scope, &id, &provider, &tokens, &written); err != nil {
			return nil, fmt.Errorf("budgets: %w", classify(err))
		}
		set := budget.Lifetime(tokens)
		if written != "" {
			var err error
			if set, err = budget.ParseLimitSet(written); err != nil {
				return nil, fmt.Errorf("budgets: %s/%s %s: %w", scope, id, provider, err)
			}
		}
		last := len(all) - 1
		if last < 0 || all[last].Scope != budget.ScopeKind(scope) || all[last].ID != id {
			all = append(all, budget.ScopeBudget{Scope: budget.ScopeKind(scope), ID: id, Limits: budget.Limits{}})
			last++
		}
		all[last].Limits[provider] = set
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("budgets: %w", classify(err))
	}
	return all, nil
}

// MarkWarned records that the warn threshold of (scope, id, provider) was
// crossed, in the window and period mark names ("" for a lifetime limit;
// see budget.Event.WarnMark), which may be forgotten after until (zero:
// never); first is true only the first time, so the warn event is
// recorded once per window.
func (db *DB) MarkWarned(ctx context.Context, scope budget.ScopeKind, id, provider, mark string, until time.Time) (first bool, err error) {
	what := fmt.Sprintf("mark warned %s/%s/%s %s", scope, id, provider, mark)
	end := toNanos(until)
	err = db.update(ctx, what, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO warn_markers (scope, id, provider, mark, warned_at, until)
			VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`, string(scope), id, provider, mark, db.now(), end)
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

// ForgetWarned drops the warn markers of windows that ended by before:
// their period is over, and the next one warns afresh under a mark of its
// own. Lifetime markers stay.
func (db *DB) ForgetWarned(ctx context.Context, before time.Time) error {
	return db.update(ctx, "forget warned", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM warn_markers WHERE until > 0 AND until <= ?`, toNanos(before))
		return err
	})
}
