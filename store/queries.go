package store

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/bot-bottle/bottlecap/budget"
)

// Totals returns every (bottle, agent, provider) aggregate, ordered by key.
// It reads the aggregate table only, never the ledger.
func (db *DB) Totals(ctx context.Context) ([]Total, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT bottle, agent, provider,
		input, cache_read, cache_write, output, reasoning, counted, reports, last_ts
		FROM totals ORDER BY bottle, agent, provider`)
	if err != nil {
		return nil, fmt.Errorf("totals: %w", classify(err))
	}
	defer rows.Close()
	var all []Total
	for rows.Next() {
		var t Total
		var last int64
		u := &t.Usage
		if err := rows.Scan(&t.Bottle, &t.Agent, &t.Provider, &u.Input, &u.CacheRead, &u.CacheWrite,
			&u.Output, &u.Reasoning, &t.Counted, &t.Reports, &last); err != nil {
			return nil, fmt.Errorf("totals: %w", classify(err))
		}
		t.LastTS = fromNanos(last)
		all = append(all, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("totals: %w", classify(err))
	}
	return all, nil
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
