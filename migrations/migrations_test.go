package migrations_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/bot-bottle/bottlecap/migrations"
)

func TestAllIsNumberedInOrder(t *testing.T) {
	all, err := migrations.All()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) == 0 {
		t.Fatal("no migrations embedded")
	}
	for i, m := range all {
		if m.Version != i+1 {
			t.Errorf("migration %d is %s (version %d), want version %d: no gaps", i, m.Name, m.Version, i+1)
		}
	}
}

func TestRunTwiceIsANoOp(t *testing.T) {
	ctx := context.Background()
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "m.db")+"?_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := migrations.Check(ctx, db); !errors.Is(err, migrations.ErrSchema) {
		t.Errorf("Check before Run: got %v, want ErrSchema", err)
	}
	for i := 0; i < 2; i++ {
		if err := migrations.Run(ctx, db); err != nil {
			t.Fatalf("Run #%d: %v", i+1, err)
		}
	}
	latest, err := migrations.Latest()
	if err != nil {
		t.Fatal(err)
	}
	var rows, max int
	if err := db.QueryRow("SELECT count(*), max(version) FROM schema_version").Scan(&rows, &max); err != nil {
		t.Fatal(err)
	}
	if rows != latest || max != latest {
		t.Errorf("schema_version has %d rows up to %d, want %d", rows, max, latest)
	}
	if err := migrations.Check(ctx, db); err != nil {
		t.Errorf("Check after Run: %v", err)
	}
}
