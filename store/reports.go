package store

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/bot-bottle/bottlecap/budget"
)

// insertSQL inserts n reports.
func insertSQL(n int) string {
	return `INSERT INTO reports
	(id, bottle, agent, provider, host, model, input, cache_read, cache_write, output, reasoning, complete, ts, counted)
	VALUES ` + placeholders(n, reportColumns)
}

const reportColumns = 14

// insertChunk is the most reports one INSERT statement carries: a
// statement per report spends most of its time in the driver, not in
// SQLite. 64 rows are 896 parameters, well under SQLite's 32,766.
const insertChunk = 64

// upsertTotalSQL adds one batch's sums to an aggregate. Every column
// saturates at budget.MaxCounted instead of overflowing (SQLite would turn
// the sum into a REAL that no longer scans into an int64), and reading the
// old value through CAST(… AS INTEGER), floored at 0, also heals a row an
// older daemon left REAL or negative.
var upsertTotalSQL = `INSERT INTO totals
	(bottle, agent, provider, input, cache_read, cache_write, output, reasoning, counted, reports, last_ts)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (bottle, agent, provider) DO UPDATE SET
		input       = ` + satSumSQL("input") + `,
		cache_read  = ` + satSumSQL("cache_read") + `,
		cache_write = ` + satSumSQL("cache_write") + `,
		output      = ` + satSumSQL("output") + `,
		reasoning   = ` + satSumSQL("reasoning") + `,
		counted     = ` + satSumSQL("counted") + `,
		reports     = ` + satSumSQL("reports") + `,
		last_ts     = max(last_ts, excluded.last_ts)`

// satSumSQL is col + excluded.col for the upsert, saturating at
// budget.MaxCounted (the excluded value is never negative: budget.ValidateReports
// and the in-memory sums see to it).
func satSumSQL(col string) string {
	old := fmt.Sprintf("max(CAST(%s AS INTEGER), 0)", col)
	return fmt.Sprintf("CASE WHEN %[1]s > %[2]d - excluded.%[3]s THEN %[2]d ELSE %[1]s + excluded.%[3]s END",
		old, budget.MaxCounted, col)
}

// AppendReports stores reports and updates their aggregates in one
// transaction. A report whose ID is already in the ledger is not stored
// again and is flagged Duplicate in its result; results are in the order of
// reports. Invalid reports fail the whole call with budget.ErrInvalid before
// anything is written.
func (db *DB) AppendReports(ctx context.Context, reports []budget.Report) ([]budget.AppendResult, error) {
	return db.appendCommit(ctx, reports, nil, nil)
}

// appendCommit is AppendReports that also inserts the bottles not stored
// yet, with a hook run after the inserts and before the commit, which the
// group-commit Writer's tests use to hold a batch.
func (db *DB) appendCommit(ctx context.Context, reports []budget.Report, bottles []budget.Bottle, beforeCommit func() error) ([]budget.AppendResult, error) {
	if err := budget.ValidateReports(reports); err != nil {
		return nil, err
	}
	w, err := db.writer()
	if err != nil {
		return nil, err
	}
	// The recent ids must change with the commit and nothing in between,
	// or a concurrent append could miss an id just committed.
	db.recent.mu.Lock()
	defer db.recent.mu.Unlock()
	tx, err := w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("append reports: begin: %w", classify(err))
	}
	defer tx.Rollback()

	if err := insertNewBottles(ctx, tx, bottles, db.now()); err != nil {
		return nil, fmt.Errorf("append reports: %w", classify(err))
	}
	results, stored, err := db.appendReports(ctx, tx, reports)
	if err != nil {
		db.health.note(err)
		return nil, fmt.Errorf("append reports: %w", classify(err))
	}
	if beforeCommit != nil {
		if err := beforeCommit(); err != nil {
			return nil, fmt.Errorf("append reports: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		db.health.note(err)
		return nil, fmt.Errorf("append reports: commit: %w", classify(err))
	}
	db.health.note(nil)
	// A file deleted during the transaction took the commit with it: the
	// reports must not be acknowledged.
	if err := db.files.check(); err != nil {
		return nil, fmt.Errorf("append reports: %w", err)
	}
	db.ckpt.committed()
	if len(stored) > 0 {
		db.tail.add(stored) // before the signal, so the shipper it wakes finds them
		db.signalCommitted()
	}
	for _, r := range stored {
		db.recent.ids[r.ID] = struct{}{}
	}
	if len(db.recent.ids) >= db.recent.limit {
		// The reports are committed; a merge that fails is tried again on
		// the next append, and until then the ids stay checked in memory.
		_ = db.mergeIDs(ctx)
	}
	return results, nil
}

type totalKey struct{ bottle, agent, provider string }

// appendReports inserts the reports whose ids the ledger does not hold yet,
// sums the new ones per (bottle, agent, provider) in memory and writes each
// sum with one upsert: the aggregates cost one statement per key per batch
// and never a read. stored are the reports it inserted, with their seqs.
func (db *DB) appendReports(ctx context.Context, tx *sql.Tx, reports []budget.Report) ([]budget.AppendResult, []budget.SeqReport, error) {
	ids := make([]string, len(reports))
	for i, r := range reports {
		ids[i] = r.ID
	}
	seen, err := db.storedIDs(ctx, tx, ids)
	if err != nil {
		return nil, nil, err
	}
	results := make([]budget.AppendResult, len(reports))
	rows := make([]budget.SeqReport, 0, len(reports))
	sums := map[totalKey]*budget.Total{}
	for i, r := range reports {
		if seen[r.ID] { // in the ledger, or earlier in this batch
			results[i].Duplicate = true
			continue
		}
		seen[r.ID] = true
		addToSum(sums, r)
		r.TS = fromNanos(toNanos(r.TS)) // as the ledger gives it back
		rows = append(rows, budget.SeqReport{Report: r})
	}
	if err := db.insertReports(ctx, tx, rows); err != nil {
		return nil, nil, err
	}
	if err := db.upsertTotals(ctx, tx, sums); err != nil {
		return nil, nil, err
	}
	return results, rows, nil
}

// insertReports inserts rows in statements of insertChunk reports, the
// rest in power-of-two pieces (a cached statement for each size), and
// sets each row's Seq: SQLite gives the rows of one INSERT consecutive
// rowids, one above the table's largest (reports are never deleted, and
// one connection writes), so a chunk's are its last rowid and the ones
// before it.
func (db *DB) insertReports(ctx context.Context, tx *sql.Tx, rows []budget.SeqReport) error {
	args := make([]any, 0, min(len(rows), insertChunk)*reportColumns)
	for len(rows) > 0 {
		chunk := rows[:pow2Floor(min(len(rows), insertChunk))]
		rows = rows[len(chunk):]
		args = args[:0]
		for _, r := range chunk {
			args = append(args, r.ID, r.Bottle, r.Agent, r.Provider, r.Host, r.Model,
				r.Input, r.CacheRead, r.CacheWrite, r.Output, r.Reasoning, r.Complete, toNanos(r.TS), r.Counted)
		}
		ins, err := sized(ctx, tx, db.stmts.insert, len(chunk))
		if err != nil {
			return fmt.Errorf("insert reports: %w", err)
		}
		res, err := ins.ExecContext(ctx, args...)
		if err != nil {
			return fmt.Errorf("insert reports %s…: %w", chunk[0].ID, err)
		}
		last, err := res.LastInsertId()
		if err != nil {
			return fmt.Errorf("insert reports %s…: %w", chunk[0].ID, err)
		}
		for i := range chunk {
			chunk[i].Seq = last - int64(len(chunk)-1-i)
		}
	}
	return nil
}

func addToSum(sums map[totalKey]*budget.Total, r budget.Report) {
	k := totalKey{r.Bottle, r.Agent, r.Provider}
	t, ok := sums[k]
	if !ok {
		t = &budget.Total{Bottle: r.Bottle, Agent: r.Agent, Provider: r.Provider}
		sums[k] = t
	}
	t.Usage = t.Usage.Add(r.Usage)
	t.Counted = budget.SatAdd(t.Counted, r.Counted)
	t.Reports++
	if r.TS.After(t.LastTS) {
		t.LastTS = r.TS
	}
}

func (db *DB) upsertTotals(ctx context.Context, tx *sql.Tx, sums map[totalKey]*budget.Total) error {
	if len(sums) == 0 {
		return nil
	}
	up := tx.StmtContext(ctx, db.stmts.upsert)
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
