package store

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/bot-bottle/bottlecap/budget"
)

// Totals returns every (bottle, agent, provider) aggregate, ordered by key.
// It reads the aggregate table only, never the ledger. A count the ledger
// holds out of range (REAL after an overflow, or negative: an older daemon
// wrote such rows) is clamped into [0, budget.MaxCounted] and named in the
// total's Clamped, so the daemon still starts and can say what it repaired.
func (db *DB) Totals(ctx context.Context) ([]budget.Total, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT bottle, agent, provider,
		input, cache_read, cache_write, output, reasoning, counted, reports, last_ts
		FROM totals ORDER BY bottle, agent, provider`)
	if err != nil {
		return nil, fmt.Errorf("totals: %w", classify(err))
	}
	defer rows.Close()
	var all []budget.Total
	for rows.Next() {
		t, err := scanTotal(rows)
		if err != nil {
			return nil, fmt.Errorf("totals: %w", classify(err))
		}
		all = append(all, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("totals: %w", classify(err))
	}
	return all, nil
}

// totalCounts are the count columns of totals, in SELECT order.
var totalCounts = []string{"input", "cache_read", "cache_write", "output", "reasoning", "counted", "reports"}

// scanTotal reads one totals row, clamping its counts.
func scanTotal(rows *sql.Rows) (budget.Total, error) {
	var t budget.Total
	var last int64
	raw := make([]any, len(totalCounts))
	dest := []any{&t.Bottle, &t.Agent, &t.Provider}
	for i := range raw {
		dest = append(dest, &raw[i])
	}
	if err := rows.Scan(append(dest, &last)...); err != nil {
		return t, err
	}
	u := &t.Usage
	for i, p := range []*int64{&u.Input, &u.CacheRead, &u.CacheWrite, &u.Output, &u.Reasoning, &t.Counted, &t.Reports} {
		n, ok := clampedCount(raw[i])
		if !ok {
			t.Clamped = append(t.Clamped, fmt.Sprintf("%s=%v", totalCounts[i], raw[i]))
		}
		*p = n
	}
	t.LastTS = fromNanos(last)
	return t, nil
}

// clampedCount reads a count column as an int64 in [0, budget.MaxCounted];
// ok is false when the stored value was not such an integer.
func clampedCount(v any) (n int64, ok bool) {
	switch x := v.(type) {
	case int64:
		if x < 0 {
			return 0, false
		}
		return x, true
	case float64:
		switch {
		case x >= float64(budget.MaxCounted):
			return budget.MaxCounted, false
		case x > 0: // NaN fails both comparisons and counts as 0
			return int64(x), false
		}
		return 0, false
	case nil:
		return 0, true
	}
	return 0, false
}

// RecentReports returns up to limit reports of a bottle, most recently
// stored first; limit <= 0 means all of them.
func (db *DB) RecentReports(ctx context.Context, bottle string, limit int) ([]budget.Report, error) {
	if limit <= 0 {
		limit = -1
	}
	rows, err := db.read.QueryContext(ctx, `SELECT id, bottle, agent, provider, host, model,
		input, cache_read, cache_write, output, reasoning, complete, ts, counted
		FROM reports WHERE bottle = ? ORDER BY seq DESC LIMIT ?`, bottle, limit)
	if err != nil {
		return nil, fmt.Errorf("recent reports of %s: %w", bottle, classify(err))
	}
	defer rows.Close()
	reports, err := scanReports(rows)
	if err != nil {
		return nil, fmt.Errorf("recent reports of %s: %w", bottle, classify(err))
	}
	return reports, nil
}

func scanReports(rows *sql.Rows) ([]budget.Report, error) {
	var all []budget.Report
	for rows.Next() {
		var r budget.Report
		var ts int64
		if err := rows.Scan(&r.ID, &r.Bottle, &r.Agent, &r.Provider, &r.Host, &r.Model,
			&r.Input, &r.CacheRead, &r.CacheWrite, &r.Output, &r.Reasoning, &r.Complete, &ts, &r.Counted); err != nil {
			return nil, err
		}
		r.TS = fromNanos(ts)
		all = append(all, r)
	}
	return all, rows.Err()
}
