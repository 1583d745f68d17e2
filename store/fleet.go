package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"

	"github.com/bot-bottle/bottlecap/budget"
)

// The fleet's shipper (SPEC section 14) follows the ledger in seq order
// from a cursor kept here, and is woken after each commit of new reports.

// ReportsAfter returns up to limit reports with a seq above after, in seq
// order, committed ones only. Seqs grow in commit order since one
// connection writes them all and none is ever deleted. A reader that
// keeps up gets them from memory (the latest commits are kept there);
// one further behind reads the ledger.
func (db *DB) ReportsAfter(ctx context.Context, after int64, limit int) ([]budget.SeqReport, error) {
	if rs, ok := db.tail.after(after, limit); ok {
		return rs, nil
	}
	return db.reportsAfterSQL(ctx, after, limit)
}

// reportsAfterSQL is ReportsAfter read from the ledger: a reader of the
// WAL sees nothing of a transaction in progress.
func (db *DB) reportsAfterSQL(ctx context.Context, after int64, limit int) ([]budget.SeqReport, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT seq, id, bottle, agent, provider, host, model,
		input, cache_read, cache_write, output, reasoning, complete, ts, counted
		FROM reports WHERE seq > ? ORDER BY seq LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("reports after seq %d: %w", after, classify(err))
	}
	defer rows.Close()
	var all []budget.SeqReport
	for rows.Next() {
		var r budget.SeqReport
		var ts int64
		if err := rows.Scan(&r.Seq, &r.ID, &r.Bottle, &r.Agent, &r.Provider, &r.Host, &r.Model,
			&r.Input, &r.CacheRead, &r.CacheWrite, &r.Output, &r.Reasoning, &r.Complete, &ts, &r.Counted); err != nil {
			return nil, fmt.Errorf("reports after seq %d: %w", after, classify(err))
		}
		r.TS = fromNanos(ts)
		all = append(all, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reports after seq %d: %w", after, classify(err))
	}
	return all, nil
}

// FleetCursor is the seq of the last report shipped to the fleet.
func (db *DB) FleetCursor(ctx context.Context) (int64, error) {
	var seq int64
	if err := db.read.QueryRowContext(ctx, `SELECT seq FROM fleet_cursor WHERE one = 1`).Scan(&seq); err != nil {
		return 0, fmt.Errorf("fleet cursor: %w", classify(err))
	}
	return seq, nil
}

// SetFleetCursor records that every report up to seq is in the fleet's
// Postgres. It never moves the cursor back, so a late write of an older
// position cannot make the shipper send reports again without need.
func (db *DB) SetFleetCursor(ctx context.Context, seq int64) error {
	return db.update(ctx, "set fleet cursor", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE fleet_cursor SET seq = max(seq, ?) WHERE one = 1`, seq)
		return err
	})
}

// FleetInstance is this ledger's id in the fleet, drawn and stored on
// first use: whoever runs on this ledger is the same fleet member, so a
// daemon restarted after a crash takes its host name back at once.
func (db *DB) FleetInstance(ctx context.Context) (string, error) {
	var id string
	err := db.update(ctx, "fleet instance", func(tx *sql.Tx) error {
		fresh := make([]byte, 8)
		rand.Read(fresh)
		if _, err := tx.ExecContext(ctx, `UPDATE fleet_cursor SET instance = ? WHERE one = 1 AND instance = ''`, hex.EncodeToString(fresh)); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT instance FROM fleet_cursor WHERE one = 1`).Scan(&id)
	})
	return id, err
}

// Committed receives after each commit that stored new reports. Sending
// never blocks the writer: a signal not taken yet stands for every commit
// since, so one receiver (the shipper) reads the ledger on waking. Nil on
// a read-only ledger.
func (db *DB) Committed() <-chan struct{} { return db.committed }

// KeepCommittedTail makes the ledger keep its latest committed reports in
// memory for ReportsAfter, from the next commit on: a fleet member's
// shipper then seldom reads SQLite, and a host alone spends neither the
// memory (about 2 MB) nor the copy on every commit.
func (db *DB) KeepCommittedTail() {
	db.tail.mu.Lock()
	db.tail.keep = true
	db.tail.mu.Unlock()
}

// signalCommitted wakes the Committed receiver without waiting for it.
func (db *DB) signalCommitted() {
	select {
	case db.committed <- struct{}{}:
	default:
	}
}
