package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/migrations"
	"github.com/bot-bottle/bottlecap/store"
)

// rawOpen opens path with plain database/sql, bypassing the store, as an
// operator's sqlite3 shell (or an attacker) would.
func rawOpen(t *testing.T, path string, pragmas ...string) *sql.DB {
	t.Helper()
	dsn := path + "?_pragma=busy_timeout(5000)"
	for _, p := range pragmas {
		dsn += "&_pragma=" + p
	}
	raw, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return raw
}

func TestOpenPutsTheFileInWALMode(t *testing.T) {
	db, path := openTemp(t)
	_ = db
	var mode string
	if err := rawOpen(t, path).QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" {
		t.Errorf("journal_mode = %q, want wal", mode)
	}
}

func TestOpenTwiceRunsEachMigrationOnce(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "bot-bottle.db")
	for i := 0; i < 2; i++ {
		db, err := store.Open(ctx, path)
		if err != nil {
			t.Fatalf("Open #%d: %v", i+1, err)
		}
		if err := db.Close(); err != nil {
			t.Fatalf("Close #%d: %v", i+1, err)
		}
	}
	all, err := migrations.All()
	if err != nil {
		t.Fatal(err)
	}
	rows, err := rawOpen(t, path).Query("SELECT version, count(*) FROM schema_version GROUP BY version ORDER BY version")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []int
	for rows.Next() {
		var v, n int
		if err := rows.Scan(&v, &n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("version %d recorded %d times, want 1", v, n)
		}
		got = append(got, v)
	}
	if len(got) != len(all) {
		t.Fatalf("schema_version has %v, want one row per migration (%d)", got, len(all))
	}
	for i, m := range all {
		if got[i] != m.Version {
			t.Errorf("schema_version[%d] = %d, want %d", i, got[i], m.Version)
		}
	}
}

func TestOpenReadOnlyRefusesWrites(t *testing.T) {
	ctx := context.Background()
	db, path := openTemp(t)
	mustAppend(t, db, report("msg_1", "b1", "a", "claude", 1))
	db.Close()

	ro, err := store.OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatalf("OpenReadOnly with the daemon stopped: %v", err)
	}
	defer ro.Close()
	if totals, err := ro.Totals(ctx); err != nil || len(totals) != 1 {
		t.Errorf("Totals = %v, %v; want one total", totals, err)
	}
	_, err = ro.AppendReports(ctx, []budget.Report{report("msg_2", "b1", "a", "claude", 1)})
	if !errors.Is(err, store.ErrReadOnly) {
		t.Errorf("AppendReports on read-only: got %v, want ErrReadOnly", err)
	}
	if err := ro.PutBottle(ctx, budget.Bottle{Slug: "b1"}); !errors.Is(err, store.ErrReadOnly) {
		t.Errorf("PutBottle on read-only: got %v, want ErrReadOnly", err)
	}
}

func TestOpenReadOnlyWithoutSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "other.db")
	raw := rawOpen(t, path, "journal_mode(WAL)")
	if _, err := raw.Exec("CREATE TABLE t (x)"); err != nil {
		t.Fatal(err)
	}
	_, err := store.OpenReadOnly(ctx, path)
	if !errors.Is(err, migrations.ErrSchema) {
		t.Errorf("OpenReadOnly on a foreign file: got %v, want ErrSchema", err)
	}
}

func TestOpenReadOnlyMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing.db")
	if _, err := store.OpenReadOnly(context.Background(), path); err == nil {
		t.Error("OpenReadOnly on a missing file: got nil error")
	}
}

// TestReadOnlyReadsWhileTheWriterWrites runs a reader against the file
// while the daemon's DB appends batch after batch; every read succeeds and
// the totals it sees never go down.
func TestReadOnlyReadsWhileTheWriterWrites(t *testing.T) {
	ctx := context.Background()
	db, path := openTemp(t)
	ro, err := store.OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatalf("OpenReadOnly while open for writing: %v", err)
	}
	defer ro.Close()

	const batches = 50
	done := make(chan error, 1)
	go func() {
		for i := 0; i < batches; i++ {
			reports := []budget.Report{
				report(fmt.Sprintf("w%d_a", i), "b1", "a", "claude", 1),
				report(fmt.Sprintf("w%d_b", i), "b2", "a", "codex", 1),
			}
			if _, err := db.AppendReports(ctx, reports); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	var last int64
	for writing := true; writing; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("writer: %v", err)
			}
			writing = false
		default:
		}
		n := readCount(t, ro)
		if n < last {
			t.Fatalf("reader saw %d reports after %d", n, last)
		}
		last = n
	}
	if n := readCount(t, ro); n != 2*batches {
		t.Errorf("reader sees %d reports after the writer finished, want %d", n, 2*batches)
	}
}

func readCount(t *testing.T, ro *store.DB) int64 {
	t.Helper()
	totals, err := ro.Totals(context.Background())
	if err != nil {
		t.Fatalf("Totals while writing: %v", err)
	}
	var n int64
	for _, tot := range totals {
		n += tot.Reports
	}
	return n
}
