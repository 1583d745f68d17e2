package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
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

// idLookupChunk is the most ids one report_ids lookup asks for; SQLite
// allows 32,766 parameters per statement.
const idLookupChunk = 512

// storedIDs returns which of ids are already in the ledger: recent ids are
// checked in memory, the rest in report_ids with one query per chunk
// rather than one per report, since each query costs far more in the
// driver than in SQLite.
func (db *DB) storedIDs(ctx context.Context, tx *sql.Tx, ids []string) (map[string]bool, error) {
	stored := make(map[string]bool, len(ids))
	var older []any
	for _, id := range ids {
		if _, ok := db.recent.ids[id]; ok {
			stored[id] = true
		} else {
			older = append(older, id)
		}
	}
	for len(older) > 0 {
		n := min(len(older), idLookupChunk)
		// Clipped: padding the chunk must not write over the next one.
		if err := db.lookupIDs(ctx, tx, older[:n:n], stored); err != nil {
			return nil, err
		}
		older = older[n:]
	}
	return stored, nil
}

// lookupIDs marks in stored the ids that report_ids holds. The list is
// padded with repeats of its first id to a power of two, so that a handful
// of cached statements serve every length.
func (db *DB) lookupIDs(ctx context.Context, tx *sql.Tx, ids []any, stored map[string]bool) error {
	for n := pow2Ceil(len(ids)); len(ids) < n; {
		ids = append(ids, ids[0])
	}
	st, err := sized(ctx, tx, db.stmts.lookup, len(ids))
	if err != nil {
		return fmt.Errorf("look up report ids: %w", err)
	}
	rows, err := st.QueryContext(ctx, ids...)
	if err != nil {
		return fmt.Errorf("look up report ids: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return fmt.Errorf("look up report ids: %w", err)
		}
		stored[id] = true
	}
	return rows.Err()
}

// lookupSQL finds which of n ids report_ids holds.
func lookupSQL(n int) string {
	return `SELECT id FROM report_ids WHERE id IN (` + placeholders(n, 1) + `)`
}

// placeholders is rows comma-separated groups of cols parameters: "?, ?"
// for (2, 1), "(?, ?), (?, ?)" for (2, 2).
func placeholders(rows, cols int) string {
	group := strings.Repeat("?, ", cols-1) + "?"
	if cols > 1 {
		group = "(" + group + ")"
	}
	return strings.Repeat(group+", ", rows-1) + group
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
