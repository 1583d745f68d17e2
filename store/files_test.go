package store_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/store"
)

// A deleted -wal file would swallow every report committed after it (they
// go into the unlinked file and are gone at the next open), so writes must
// be refused and reads keep working.
func TestLedgerFileDeletedRefusesWritesKeepsReads(t *testing.T) {
	tests := []struct {
		name    string
		suffix  string
		replace bool
		want    string
	}{
		{"wal deleted", "-wal", false, "-wal was deleted"},
		{"wal replaced", "-wal", true, "-wal was replaced"},
		{"database deleted", "", false, "bot-bottle.db was deleted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, path := openTemp(t)
			mustAppend(t, db, report("r1", "b1", "a", "claude", 1))
			if err := os.Remove(path + tt.suffix); err != nil {
				t.Fatal(err)
			}
			if tt.replace {
				os.WriteFile(path+tt.suffix, nil, 0o600)
			}
			_, err := db.AppendReports(context.Background(), []budget.Report{report("r2", "b1", "a", "claude", 1)})
			if !errors.Is(err, budget.ErrLedgerLost) || !errors.Is(err, budget.ErrUnavailable) ||
				!strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "restart the daemon") {
				t.Fatalf("append: got %v, want ErrLedgerLost naming %q and saying to restart", err, tt.want)
			}
			if err := db.PutBottle(context.Background(), budget.Bottle{Slug: "b2"}); !errors.Is(err, budget.ErrLedgerLost) {
				t.Errorf("put bottle: got %v, want ErrLedgerLost", err)
			}
			totals, err := db.Totals(context.Background())
			if err != nil || len(totals) != 1 || totals[0].Reports != 1 {
				t.Errorf("reads: got %+v (%v), want the one report committed before", totals, err)
			}
		})
	}
}

// What the lost -wal held when it was deleted (reports acknowledged but not
// yet checkpointed) is copied into the database file at once, so a crash
// afterwards loses none of them: the database file alone, copied as a
// crash would leave it, holds every acknowledged report.
func TestDeletedWALIsRescuedIntoTheDatabaseFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bot-bottle.db")
	// The background checkpointer copies the first commit, then sleeps:
	// the second stays in the -wal only.
	db, err := store.Open(context.Background(), path, store.WithCheckpointInterval(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	mustAppend(t, db, report("r1", "b1", "a", "claude", 1))
	mustAppend(t, db, report("r2", "b1", "a", "claude", 1))
	if err := os.Remove(path + "-wal"); err != nil {
		t.Fatal(err)
	}
	_, err = db.AppendReports(context.Background(), []budget.Report{report("r3", "b1", "a", "claude", 1)})
	if !errors.Is(err, budget.ErrLedgerLost) || !strings.Contains(err.Error(), "committed reports were copied into") {
		t.Fatalf("got %v, want ErrLedgerLost saying the -wal's reports were rescued", err)
	}
	crashed := filepath.Join(t.TempDir(), "bot-bottle.db")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(crashed, b, 0o600)
	after, err := store.Open(context.Background(), crashed)
	if err != nil {
		t.Fatal(err)
	}
	defer after.Close()
	totals, err := after.Totals(context.Background())
	if err != nil || len(totals) != 1 || totals[0].Reports != 2 {
		t.Errorf("database file alone: got %+v (%v), want both acknowledged reports", totals, err)
	}
}
