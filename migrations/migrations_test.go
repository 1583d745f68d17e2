package migrations_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

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

// TestLoadRefusesBadNames holds Load (the ledger's and the fleet's schema
// reader) to its rules: a version prefix on every file, one file per
// version, version order whatever the names' order.
func TestLoadRefusesBadNames(t *testing.T) {
	sql := &fstest.MapFile{Data: []byte("SELECT 1;")}
	for _, tt := range []struct {
		name  string
		files fstest.MapFS
		want  string // "" = loads, else a part of the error
	}{
		{"in order", fstest.MapFS{"m/0002_b.sql": sql, "m/0010_c.sql": sql, "m/0001_a.sql": sql}, ""},
		{"no prefix", fstest.MapFS{"m/init.sql": sql}, "fleet migration m/init.sql: want NNNN_name.sql"},
		{"zero", fstest.MapFS{"m/0000_a.sql": sql}, "positive version"},
		{"shared version", fstest.MapFS{"m/0001_a.sql": sql, "m/1_b.sql": sql}, "share version 1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			all, err := migrations.Load(tt.files, "m/*.sql", "fleet migration")
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("Load: %v, want an error with %q", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range all {
				got = append(got, fmt.Sprintf("%d %s", m.Version, m.Name))
			}
			if want := []string{"1 0001_a.sql", "2 0002_b.sql", "10 0010_c.sql"}; !slices.Equal(got, want) {
				t.Errorf("Load = %q, want %q", got, want)
			}
		})
	}
}
