package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/migrations"
	"github.com/bot-bottle/bottlecap/store"
)

func idReports(prefix string, n int) []budget.Report {
	out := make([]budget.Report, n)
	for i := range out {
		out[i] = budget.Report{ID: fmt.Sprintf("%s-%03d", prefix, i), Bottle: "b1", Agent: "a", Provider: "claude",
			Usage: budget.Usage{Input: 10}, Counted: 10, Complete: true, TS: time.Unix(1_800_000_000, 0)}
	}
	return out
}

func countDuplicates(t *testing.T, res []budget.AppendResult) int {
	t.Helper()
	n := 0
	for _, r := range res {
		if r.Duplicate {
			n++
		}
	}
	return n
}

// TestDuplicatesAcrossIDMerges appends across several merges of recent ids
// into report_ids and after a reopen: every id is counted once whether it
// is still recent, merged, or both in one batch.
func TestDuplicatesAcrossIDMerges(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ledger.db")
	db, err := store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	db.SetIDMergeLimit(25)
	for round := range 4 {
		res, err := db.AppendReports(ctx, idReports(fmt.Sprintf("r%d", round), 20))
		if err != nil || countDuplicates(t, res) != 0 {
			t.Fatalf("round %d: got %d duplicates (%v), want 0", round, countDuplicates(t, res), err)
		}
	}
	if got := db.RecentIDs(); got >= 25 {
		t.Errorf("got %d ids held in memory, want a merge to have moved them out (limit 25)", got)
	}
	checkAllDuplicates(t, db, 4)
	db.Close()

	db, err = store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	checkAllDuplicates(t, db, 4)
	totals, err := db.Totals(ctx)
	if err != nil || len(totals) != 1 || totals[0].Reports != 80 || totals[0].Counted != 800 {
		t.Errorf("got totals %+v (%v), want 80 reports counted once", totals, err)
	}
}

// checkAllDuplicates re-sends every round, with a repeat inside the batch,
// and wants each report flagged a duplicate.
func checkAllDuplicates(t *testing.T, db *store.DB, rounds int) {
	t.Helper()
	for round := range rounds {
		again := idReports(fmt.Sprintf("r%d", round), 20)
		again = append(again, again[0])
		res, err := db.AppendReports(context.Background(), again)
		if err != nil || countDuplicates(t, res) != len(again) {
			t.Errorf("round %d again: got %d of %d duplicates (%v)", round, countDuplicates(t, res), len(again), err)
		}
	}
}

// TestMigrationMovesIDsOfAnExistingLedger opens a ledger written by the
// schema before report_ids existed and checks its reports are kept and
// still deduplicated.
func TestMigrationMovesIDsOfAnExistingLedger(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	raw, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	all, err := migrations.All()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range all[:3] {
		if _, err := raw.ExecContext(ctx, m.SQL); err != nil {
			t.Fatalf("%s: %v", m.Name, err)
		}
	}
	if _, err := raw.ExecContext(ctx, `INSERT INTO reports (id, bottle, input, cache_read, cache_write, output, reasoning, complete, ts, counted)
		VALUES ('old-1', 'b1', 5, 0, 0, 0, 0, 1, 0, 5), ('old-2', 'b1', 5, 0, 0, 0, 0, 1, 0, 5)`); err != nil {
		t.Fatal(err)
	}
	raw.Exec(`CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`)
	for _, m := range all[:3] {
		raw.Exec(`INSERT INTO schema_version VALUES (?, ?, 0)`, m.Version, m.Name)
	}
	raw.Close()

	db, err := store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := db.AppendReports(ctx, []budget.Report{
		{ID: "old-2", Bottle: "b1", Usage: budget.Usage{Input: 5}, Counted: 5},
		{ID: "new-1", Bottle: "b1", Usage: budget.Usage{Input: 5}, Counted: 5},
	})
	if err != nil || !res[0].Duplicate || res[1].Duplicate {
		t.Errorf("got %+v (%v), want old-2 a duplicate and new-1 stored", res, err)
	}
	recent, err := db.RecentReports(ctx, "b1", 0)
	if err != nil || len(recent) != 3 {
		t.Errorf("got %d reports (%v), want the 2 migrated and 1 new", len(recent), err)
	}
}

// TestBatchesOfEverySize appends batches of 1 to 150 reports (cut into
// statements of different sizes) where every third id was stored before —
// some still recent, some already merged into report_ids — and one id
// repeats within the batch: each stored id is reported a duplicate, each
// new one stored once, and the totals add up.
func TestBatchesOfEverySize(t *testing.T) {
	ctx := context.Background()
	db, path := openTemp(t)
	db.SetIDMergeLimit(300)
	fresh := 0
	for size := 1; size <= 150; size++ {
		batch := idReports(fmt.Sprintf("s%03d", size), size)
		wantDup := 0
		for i := range batch {
			if i%3 == 2 && size > 1 {
				// The first ids of an older batch are always stored.
				old := []int{size - 1, max(1, size/2)}[i%2]
				batch[i].ID = fmt.Sprintf("s%03d-%03d", old, (i/3)%min(2, old))
				wantDup++
			}
		}
		if size > 4 {
			batch[size-1] = batch[0] // again within the batch
			wantDup++
			if (size-1)%3 == 2 {
				wantDup-- // it replaced a stored id
			}
		}
		res, err := db.AppendReports(ctx, batch)
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if got := countDuplicates(t, res); got != wantDup {
			t.Fatalf("size %d: %d duplicates, want %d", size, got, wantDup)
		}
		fresh += size - wantDup
	}
	totals, err := db.Totals(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(totals) != 1 || totals[0].Reports != int64(fresh) || totals[0].Usage.Input != 10*int64(fresh) {
		t.Errorf("totals %+v, want %d reports of 10 input tokens", totals, fresh)
	}
	raw, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var rows, distinct int
	if err := raw.QueryRow(`SELECT COUNT(*), COUNT(DISTINCT id) FROM reports`).Scan(&rows, &distinct); err != nil {
		t.Fatal(err)
	}
	if rows != fresh || distinct != fresh {
		t.Errorf("%d rows in reports (%d distinct ids), want %d", rows, distinct, fresh)
	}
}
