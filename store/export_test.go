package store

import (
	"context"

	"github.com/bot-bottle/bottlecap/budget"
)

// WithBeforeCommit runs f after a group-commit batch's inserts and before
// its commit; an error from f fails the batch. Tests use it to hold a batch
// open and to inject commit failures. It exists only in test builds.
func WithBeforeCommit(f func() error) WriterOption {
	return func(w *Writer) { w.beforeCommit = f }
}

// Queued is how many submissions wait in the queue, so a test can hold a
// batch until the next one has formed, without sleeping.
func (w *Writer) Queued() int { return len(w.queue) }

// SetIDMergeLimit makes the store merge recent report ids into report_ids
// once n are held, so tests can cross merges with a few reports.
func (db *DB) SetIDMergeLimit(n int) {
	db.recent.mu.Lock()
	defer db.recent.mu.Unlock()
	db.recent.limit = n
}

// RecentIDs is how many report ids are checked in memory.
func (db *DB) RecentIDs() int {
	db.recent.mu.Lock()
	defer db.recent.mu.Unlock()
	return len(db.recent.ids)
}

// WithMaxBatch caps how many reports one transaction takes (default 4096),
// bounding how long a commit holds the writer; tests cross the cap with a
// few reports. It exists only in test builds. A single submission larger
// than the cap is still committed whole, alone.
func WithMaxBatch(n int) WriterOption {
	return func(w *Writer) {
		if n > 0 {
			w.maxBatch = n
		}
	}
}

// ReportsAfterSQL is ReportsAfter read from SQLite only, to hold the
// in-memory tail to the ledger.
func (db *DB) ReportsAfterSQL(ctx context.Context, after int64, limit int) ([]budget.SeqReport, error) {
	return db.reportsAfterSQL(ctx, after, limit)
}

// TailHeld is how many committed reports the in-memory tail holds.
func (db *DB) TailHeld() int { return db.tail.held() }
