package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"

	"github.com/bot-bottle/bottlecap/budget"
)

// QueueNotices queues deliveries (their sink, kind and body) in one
// transaction, then keeps at most limit of each sink's deliveries, dropping
// its oldest beyond that: a sink that is down for days costs the ledger a
// bounded number of rows, and what it gets when it is back is the latest.
// dropped counts the deliveries dropped, by sink.
func (db *DB) QueueNotices(ctx context.Context, ds []budget.Delivery, limit int) (dropped map[string]int, err error) {
	dropped = map[string]int{}
	err = db.update(ctx, fmt.Sprintf("queue %d notices", len(ds)), func(tx *sql.Tx) error {
		now := db.now()
		var sinks []string
		for _, d := range ds {
			if _, err := tx.ExecContext(ctx, `INSERT INTO notify_queue (sink, kind, body, created_at) VALUES (?, ?, ?, ?)`,
				d.Sink, string(d.Kind), d.Body, now); err != nil {
				return err
			}
			if !slices.Contains(sinks, d.Sink) {
				sinks = append(sinks, d.Sink)
			}
		}
		for _, sink := range sinks {
			n, err := trimQueue(ctx, tx, sink, limit)
			if err != nil {
				return err
			}
			if n > 0 {
				dropped[sink] = n
			}
		}
		return nil
	})
	return dropped, err
}

// trimQueue deletes a sink's oldest deliveries beyond its newest limit.
func trimQueue(ctx context.Context, tx *sql.Tx, sink string, limit int) (int, error) {
	res, err := tx.ExecContext(ctx, `DELETE FROM notify_queue WHERE sink = ? AND id <= (
		SELECT id FROM notify_queue WHERE sink = ? ORDER BY id DESC LIMIT 1 OFFSET ?)`, sink, sink, limit)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// PendingNotices are a sink's oldest queued deliveries, at most limit.
func (db *DB) PendingNotices(ctx context.Context, sink string, limit int) ([]budget.Delivery, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT id, sink, kind, body, attempts, last_error, created_at
		FROM notify_queue WHERE sink = ? ORDER BY id LIMIT ?`, sink, limit)
	if err != nil {
		return nil, fmt.Errorf("pending notices: %w", classify(err))
	}
	defer rows.Close()
	var out []budget.Delivery
	for rows.Next() {
		var d budget.Delivery
		var kind string
		var created int64
		if err := rows.Scan(&d.ID, &d.Sink, &kind, &d.Body, &d.Attempts, &d.LastError, &created); err != nil {
			return nil, fmt.Errorf("pending notices: %w", classify(err))
		}
		d.Kind, d.CreatedAt = budget.NoticeKind(kind), fromNanos(created)
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pending notices: %w", classify(err))
	}
	return out, nil
}

// NoticeDelivered forgets a delivery its sink took. One already gone
// (dropped meanwhile) is not an error.
func (db *DB) NoticeDelivered(ctx context.Context, id int64) error {
	return db.update(ctx, fmt.Sprintf("notice %d delivered", id), func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM notify_queue WHERE id = ?`, id)
		return err
	})
}

// NoticeFailed records a failed attempt at a delivery. One already gone
// (dropped meanwhile) is an error wrapping budget.ErrNotFound: there is
// nothing left to retry.
func (db *DB) NoticeFailed(ctx context.Context, id int64, attempts int, lastError string) error {
	return db.update(ctx, fmt.Sprintf("notice %d failed", id), func(tx *sql.Tx) error {
		return mustChange(tx.ExecContext(ctx, `UPDATE notify_queue SET attempts = ?, last_error = ? WHERE id = ?`,
			attempts, lastError, id))
	})
}

// NoticeCounts is how many deliveries are queued, by sink.
func (db *DB) NoticeCounts(ctx context.Context) (map[string]int, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT sink, count(*) FROM notify_queue GROUP BY sink`)
	if err != nil {
		return nil, fmt.Errorf("notice counts: %w", classify(err))
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var sink string
		var n int
		if err := rows.Scan(&sink, &n); err != nil {
			return nil, fmt.Errorf("notice counts: %w", classify(err))
		}
		out[sink] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("notice counts: %w", classify(err))
	}
	return out, nil
}

// DropNotices deletes the deliveries queued for sinks not in keep (sinks
// the settings no longer list), and counts them by sink.
func (db *DB) DropNotices(ctx context.Context, keep []string) (map[string]int, error) {
	counts, err := db.NoticeCounts(ctx)
	if err != nil {
		return nil, err
	}
	dropped := map[string]int{}
	err = db.update(ctx, "drop notices of sinks no longer listed", func(tx *sql.Tx) error {
		for sink := range counts {
			if slices.Contains(keep, sink) {
				continue
			}
			res, err := tx.ExecContext(ctx, `DELETE FROM notify_queue WHERE sink = ?`, sink)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n > 0 {
				dropped[sink] = int(n)
			}
		}
		return nil
	})
	return dropped, err
}
