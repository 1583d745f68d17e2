package store

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/bot-bottle/bottlecap/budget"
)

const insertReportSQL = `INSERT INTO reports
	(id, bottle, agent, provider, host, model, input, cache_read, cache_write, output, reasoning, complete, ts, counted)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (id) DO NOTHING`

const upsertTotalSQL = `INSERT INTO totals
	(bottle, agent, provider, input, cache_read, cache_write, output, reasoning, counted, reports, last_ts)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (bottle, agent, provider) DO UPDATE SET
		input       = input + excluded.input,
		cache_read  = cache_read + excluded.cache_read,
		cache_write = cache_write + excluded.cache_write,
		output      = output + excluded.output,
		reasoning   = reasoning + excluded.reasoning,
		counted     = counted + excluded.counted,
		reports     = reports + excluded.reports,
		last_ts     = max(last_ts, excluded.last_ts)`

// AppendReports stores reports and updates their aggregates in one
// transaction; see Repository. Invalid reports fail the whole call with
// budget.ErrInvalid before anything is written.
func (db *DB) AppendReports(ctx context.Context, reports []budget.Report) ([]AppendResult, error) {
	return db.appendCommit(ctx, reports, nil)
}

// appendCommit is AppendReports with a hook run after the inserts and before
// the commit, which the group-commit Writer's tests use to hold a batch.
func (db *DB) appendCommit(ctx context.Context, reports []budget.Report, beforeCommit func() error) ([]AppendResult, error) {
	if err := ValidateReports(reports); err != nil {
		return nil, err
	}
	w, err := db.writer()
	if err != nil {
		return nil, err
	}
	tx, err := w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("append reports: begin: %w", classify(err))
	}
	defer tx.Rollback()

	results, err := appendReports(ctx, tx, reports)
	if err != nil {
		return nil, fmt.Errorf("append reports: %w", classify(err))
	}
	if beforeCommit != nil {
		if err := beforeCommit(); err != nil {
			return nil, fmt.Errorf("append reports: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("append reports: commit: %w", classify(err))
	}
	db.ckpt.committed()
	return results, nil
}

// ValidateReports rejects, with budget.ErrInvalid, a report the ledger
// cannot store: no id, no bottle or a negative count. The Writer checks each
// submission with it so one bad report cannot fail a whole batch.
func ValidateReports(reports []budget.Report) error {
	for i, r := range reports {
		if r.ID == "" {
			return fmt.Errorf("%w: report %d: id is required", budget.ErrInvalid, i)
		}
		if r.Bottle == "" {
			return fmt.Errorf("%w: report %s: bottle is required", budget.ErrInvalid, r.ID)
		}
		if err := r.Usage.Validate(); err != nil {
			return fmt.Errorf("report %s: %w", r.ID, err)
		}
		if r.Counted < 0 {
			return fmt.Errorf("%w: report %s: counted_tokens must not be negative (got %d)", budget.ErrInvalid, r.ID, r.Counted)
		}
	}
	return nil
}

type totalKey struct{ bottle, agent, provider string }

// appendReports inserts the reports one by one (a conflict on id means the
// report is a duplicate), sums the new ones per (bottle, agent, provider) in
// memory and writes each sum with one upsert: the aggregates cost one
// statement per key per batch and never a read.
func appendReports(ctx context.Context, tx *sql.Tx, reports []budget.Report) ([]AppendResult, error) {
	ins, err := tx.PrepareContext(ctx, insertReportSQL)
	if err != nil {
		return nil, fmt.Errorf("prepare insert: %w", err)
	}
	defer ins.Close()

	results := make([]AppendResult, len(reports))
	seen := make(map[string]struct{}, len(reports))
	sums := map[totalKey]*Total{}
	for i, r := range reports {
		if _, dup := seen[r.ID]; dup {
			results[i].Duplicate = true
			continue
		}
		seen[r.ID] = struct{}{}
		inserted, err := insertReport(ctx, ins, r)
		if err != nil {
			return nil, err
		}
		if !inserted {
			results[i].Duplicate = true
			continue
		}
		addToSum(sums, r)
	}
	if err := upsertTotals(ctx, tx, sums); err != nil {
		return nil, err
	}
	return results, nil
}

func insertReport(ctx context.Context, ins *sql.Stmt, r budget.Report) (bool, error) {
	res, err := ins.ExecContext(ctx, r.ID, r.Bottle, r.Agent, r.Provider, r.Host, r.Model,
		r.Input, r.CacheRead, r.CacheWrite, r.Output, r.Reasoning, r.Complete, toNanos(r.TS), r.Counted)
	if err != nil {
		return false, fmt.Errorf("insert report %s: %w", r.ID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("insert report %s: %w", r.ID, err)
	}
	return n == 1, nil
}

func addToSum(sums map[totalKey]*Total, r budget.Report) {
	k := totalKey{r.Bottle, r.Agent, r.Provider}
	t, ok := sums[k]
	if !ok {
		t = &Total{Bottle: r.Bottle, Agent: r.Agent, Provider: r.Provider}
		sums[k] = t
	}
	t.Usage = t.Usage.Add(r.Usage)
	t.Counted += r.Counted
	t.Reports++
	if r.TS.After(t.LastTS) {
		t.LastTS = r.TS
	}
}

func upsertTotals(ctx context.Context, tx *sql.Tx, sums map[totalKey]*Total) error {
	if len(sums) == 0 {
		return nil
	}
	up, err := tx.PrepareContext(ctx, upsertTotalSQL)
	if err != nil {
		return fmt.Errorf("prepare totals: %w", err)
	}
	defer up.Close()
	for _, t := range sums {
		u := t.Usage
		_, err := up.ExecContext(ctx, t.Bottle, t.Agent, t.Provider,
			u.Input, u.CacheRead, u.CacheWrite, u.Output, u.Reasoning, t.Counted, t.Reports, toNanos(t.LastTS))
		if err != nil {
			return fmt.Errorf("update totals of %s/%s/%s: %w", t.Bottle, t.Agent, t.Provider, err)
		}
	}
	return nil
}
