package store

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
)

// idMergeThreshold is how many recent ids the store keeps in memory before
// it merges them into report_ids: about 6 MB, and a merge every few
// seconds at full ingest.
const idMergeThreshold = 1 << 16

// recentIDs are the ids of the reports stored after report_ids_merged.seq,
// which report_ids does not hold yet. A unique index on random upstream ids
// would cost a random page write per report in every commit, more so the
// larger the ledger; instead new ids are checked here and merged into
// report_ids in sorted bulk. Only appends touch it, under mu.
type recentIDs struct {
	mu     sync.Mutex
	ids    map[string]struct{}
	merged int64 // report_ids_merged.seq
	limit  int   // merge at this many; idMergeThreshold but in tests
}

// loadRecentIDs rebuilds the recent ids from the ledger on open: every
// report stored after the last merge, including those a crash interrupted.
func (db *DB) loadRecentIDs(ctx context.Context) error {
	db.recent.ids, db.recent.limit = map[string]struct{}{}, idMergeThreshold
	if err := db.write.QueryRowContext(ctx, `SELECT seq FROM report_ids_merged`).Scan(&db.recent.merged); err != nil {
		return fmt.Errorf("load report ids: %w", classify(err))
	}
	rows, err := db.write.QueryContext(ctx, `SELECT id FROM reports WHERE seq > ?`, db.recent.merged)
	if err != nil {
		return fmt.Errorf("load report ids: %w", classify(err))
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return fmt.Errorf("load report ids: %w", classify(err))
		}
		db.recent.ids[id] = struct{}{}
	}
	return rows.Err()
}

// seenIDs answers, inside an append transaction, whether an id is already
// in the ledger: recent ids in memory, older ones in report_ids.
type seenIDs struct {
	recent map[string]struct{}
	lookup *sql.Stmt
}

func (r *recentIDs) checker(ctx context.Context, tx *sql.Tx) (*seenIDs, error) {
	st, err := tx.PrepareContext(ctx, `SELECT 1 FROM report_ids WHERE id = ?`)
	if err != nil {
		return nil, fmt.Errorf("prepare id lookup: %w", err)
	}
	return &seenIDs{recent: r.ids, lookup: st}, nil
}

func (s *seenIDs) has(ctx context.Context, id string) (bool, error) {
	if _, ok := s.recent[id]; ok {
		return true, nil
	}
	var one int
	switch err := s.lookup.QueryRowContext(ctx, id).Scan(&one); err {
	case nil:
		return true, nil
	case sql.ErrNoRows:
		return false, nil
	default:
		return false, fmt.Errorf("look up report id %s: %w", id, err)
	}
}

// mergeIDs moves the recent ids into report_ids in one transaction, sorted,
// so that each B-tree page is written once for all the ids it receives. If
// it fails the ids stay checked in memory and the next append tries again.
func (db *DB) mergeIDs(ctx context.Context) error {
	var upTo int64
	err := db.update(ctx, "merge report ids", func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM reports`).Scan(&upTo); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO report_ids
			SELECT id FROM reports WHERE seq > ? AND seq <= ? ORDER BY id`, db.recent.merged, upTo); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE report_ids_merged SET seq = ?`, upTo)
		return err
	})
	if err != nil {
		return err
	}
	db.recent.ids, db.recent.merged = map[string]struct{}{}, upTo
	return nil
}
