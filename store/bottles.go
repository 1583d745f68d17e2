package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/bot-bottle/bottlecap/budget"
)

const bottleColumns = `slug, agent, name, parent, budget, agent_budgets, policy, containers, state, state_reason, by_operator, implicit, created_at, rate, by_rate_guard, label_budget`

// PutBottle inserts or replaces a bottle. An empty state is stored as
// active; a zero CreatedAt keeps the stored one (or is now for a new bottle).
func (db *DB) PutBottle(ctx context.Context, b budget.Bottle) error {
	return db.update(ctx, "put bottle "+b.Slug, func(tx *sql.Tx) error {
		return putBottle(ctx, tx, b, db.now())
	})
}

func putBottle(ctx context.Context, tx *sql.Tx, b budget.Bottle, now int64) error {
	if b.Slug == "" {
		return fmt.Errorf("%w: slug is required", budget.ErrInvalid)
	}
	if b.State == "" {
		b.State = budget.Active
	}
	js, err := bottleJSON(b)
	if err != nil {
		return err
	}
	created, keep := toNanos(b.CreatedAt), b.CreatedAt.IsZero()
	if keep {
		created = now
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO bottles (`+bottleColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (slug) DO UPDATE SET
			agent = excluded.agent, name = excluded.name, parent = excluded.parent,
			budget = excluded.budget, agent_budgets = excluded.agent_budgets,
			policy = excluded.policy, containers = excluded.containers,
			state = excluded.state, state_reason = excluded.state_reason,
			by_operator = excluded.by_operator, implicit = excluded.implicit,
			rate = excluded.rate, by_rate_guard = excluded.by_rate_guard,
			label_budget = excluded.label_budget,
			created_at = CASE WHEN ? THEN bottles.created_at ELSE excluded.created_at END`,
		b.Slug, b.Agent, b.Name, b.Parent, js.budget, js.agents, string(b.Shutdown),
		js.containers, string(b.State), b.StateReason, b.ByOperator, b.Implicit, created, js.rate, b.ByRateGuard, js.labels, keep)
	return err
}

// insertNewBottles inserts the bottles the ledger does not hold yet and
// leaves the others as they are: a bottle registered on the fly must not
// overwrite a registration (or a state) stored meanwhile.
func insertNewBottles(ctx context.Context, tx *sql.Tx, bottles []budget.Bottle, now int64) error {
	for _, b := range bottles {
		if b.State == "" {
			b.State = budget.Active
		}
		js, err := bottleJSON(b)
		if err != nil {
			return err
		}
		created := toNanos(b.CreatedAt)
		if b.CreatedAt.IsZero() {
			created = now
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO bottles (`+bottleColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (slug) DO NOTHING`,
			b.Slug, b.Agent, b.Name, b.Parent, js.budget, js.agents, string(b.Shutdown),
			js.containers, string(b.State), b.StateReason, b.ByOperator, b.Implicit, created, js.rate, b.ByRateGuard, js.labels)
		if err != nil {
			return fmt.Errorf("insert bottle %s: %w", b.Slug, err)
		}
	}
	return nil
}

// bottleColumnsJSON are a bottle's columns that hold JSON.
type bottleColumnsJSON struct{ budget, agents, containers, rate, labels string }

func bottleJSON(b budget.Bottle) (js bottleColumnsJSON, err error) {
	enc := func(v any, empty string) (string, error) {
		data, err := json.Marshal(v)
		if err != nil {
			return "", fmt.Errorf("encode bottle %s: %w", b.Slug, err)
		}
		if string(data) == "null" {
			return empty, nil
		}
		return string(data), nil
	}
	for _, f := range []struct {
		dst   *string
		v     any
		empty string
	}{{&js.budget, b.Budget, "{}"}, {&js.agents, b.AgentBudgets, "{}"}, {&js.containers, b.Containers, "[]"},
		{&js.rate, b.Rate, "{}"}, {&js.labels, b.LabelBudget, "{}"}} {
		if *f.dst, err = enc(f.v, f.empty); err != nil {
			return js, err
		}
	}
	return js, nil
}

// Bottle returns one bottle, or an error wrapping budget.ErrNotFound.
func (db *DB) Bottle(ctx context.Context, slug string) (budget.Bottle, error) {
	row := db.read.QueryRowContext(ctx, `SELECT `+bottleColumns+` FROM bottles WHERE slug = ?`, slug)
	b, err := scanBottle(row)
	if err != nil {
		return budget.Bottle{}, fmt.Errorf("bottle %s: %w", slug, classify(err))
	}
	return b, nil
}

// Bottles returns every bottle, ordered by slug.
func (db *DB) Bottles(ctx context.Context) ([]budget.Bottle, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT `+bottleColumns+` FROM bottles ORDER BY slug`)
	if err != nil {
		return nil, fmt.Errorf("bottles: %w", classify(err))
	}
	defer rows.Close()
	var all []budget.Bottle
	for rows.Next() {
		b, err := scanBottle(rows)
		if err != nil {
			return nil, fmt.Errorf("bottles: %w", classify(err))
		}
		all = append(all, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("bottles: %w", classify(err))
	}
	return all, nil
}

type scanner interface{ Scan(dest ...any) error }

func scanBottle(s scanner) (budget.Bottle, error) {
	var b budget.Bottle
	var js bottleColumnsJSON
	var policy, state string
	var created int64
	err := s.Scan(&b.Slug, &b.Agent, &b.Name, &b.Parent, &js.budget, &js.agents, &policy,
		&js.containers, &state, &b.StateReason, &b.ByOperator, &b.Implicit, &created, &js.rate, &b.ByRateGuard, &js.labels)
	if err != nil {
		return b, err
	}
	b.Shutdown, b.State, b.CreatedAt = budget.Policy(policy), budget.State(state), fromNanos(created)
	for _, f := range []struct {
		data string
		dst  any
	}{{js.budget, &b.Budget}, {js.agents, &b.AgentBudgets}, {js.containers, &b.Containers}, {js.rate, &b.Rate}, {js.labels, &b.LabelBudget}} {
		if err := json.Unmarshal([]byte(f.data), f.dst); err != nil {
			return b, fmt.Errorf("decode bottle %s: %w", b.Slug, err)
		}
	}
	if len(b.Budget) == 0 {
		b.Budget = nil
	}
	if len(b.LabelBudget) == 0 {
		b.LabelBudget = nil
	}
	if len(b.AgentBudgets) == 0 {
		b.AgentBudgets = nil
	}
	if len(b.Containers) == 0 {
		b.Containers = nil
	}
	if len(b.Rate) == 0 {
		b.Rate = nil
	}
	return b, nil
}

// DeleteBottle forgets a bottle and the runtime limits set on it and its
// agents; its reports and aggregates stay in the ledger. An unknown slug
// is an error wrapping budget.ErrNotFound.
func (db *DB) DeleteBottle(ctx context.Context, slug string) error {
	return db.update(ctx, "delete bottle "+slug, func(tx *sql.Tx) error {
		if err := mustChange(tx.ExecContext(ctx, `DELETE FROM bottles WHERE slug = ?`, slug)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM budgets WHERE (scope = 'bottle' AND id = ?)
			OR (scope = 'agent' AND substr(id, 1, length(?) + 1) = ? || '/')`, slug, slug, slug)
		return err
	})
}

// SetBottleState changes a bottle's state, leaving StateReason and
// ByOperator as they are (PutBottle sets those). An unknown slug is an error
// wrapping budget.ErrNotFound.
func (db *DB) SetBottleState(ctx context.Context, slug string, s budget.State) error {
	return db.update(ctx, "set state of "+slug, func(tx *sql.Tx) error {
		return mustChange(tx.ExecContext(ctx, `UPDATE bottles SET state = ? WHERE slug = ?`, string(s), slug))
	})
}
