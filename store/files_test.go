package store_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

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
			if !errors.Is(err, store.ErrLedgerLost) || !errors.Is(err, budget.ErrUnavailable) ||
				!strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "restart the daemon") {
				t.Fatalf("append: got %v, want ErrLedgerLost naming %q and saying to restart", err, tt.want)
			}
			if err := db.PutBottle(context.Background(), budget.Bottle{Slug: "b2"}); !errors.Is(err, store.ErrLedgerLost) {
				t.Errorf("put bottle: got %v, want ErrLedgerLost", err)
			}
			totals, err := db.Totals(context.Background())
			if err != nil || len(totals) != 1 || totals[0].Reports != 1 {
				t.Errorf("reads: got %+v (%v), want the one report committed before", totals, err)
			}
		})
	}
}
