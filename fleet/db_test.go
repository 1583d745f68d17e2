package fleet_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/fleet"
	"github.com/bot-bottle/bottlecap/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// open opens a fresh fleet database for t.
func open(t *testing.T) (*fleet.DB, string) {
	t.Helper()
	dsn := pgtest.Database(t)
	db, err := fleet.Open(ctxT(t), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return db, dsn
}

func scalar[T any](t *testing.T, db *fleet.DB, sql string, args ...any) T {
	t.Helper()
	var v T
	if err := db.Pool().QueryRow(ctxT(t), sql, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

func TestMigrationFilesAreNumberedInOrder(t *testing.T) {
	names, err := fleet.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range names {
		if want := fmt.Sprintf("%04d_", i+1); !strings.HasPrefix(name, want) {
			t.Errorf("migration %d is %s, want a name starting %s", i, name, want)
		}
	}
	if len(names) == 0 {
		t.Error("no fleet migrations embedded")
	}
}

func TestOpenAppliesTheSchemaOnce(t *testing.T) {
	db, dsn := open(t)
	names, _ := fleet.Migrations()
	for _, table := range []string{"fleet_hosts", "fleet_reports", "fleet_host_usage", "fleet_leases", "fleet_usage_minutes", "fleet_usage_hours"} {
		if n := scalar[int](t, db, "SELECT count(*) FROM pg_tables WHERE tablename = $1", table); n != 1 {
			t.Errorf("table %s: %d, want 1", table, n)
		}
	}
	again, err := fleet.Open(ctxT(t), dsn)
	if err != nil {
		t.Fatalf("a second Open: %v", err)
	}
	again.Close()
	if n := scalar[int](t, db, "SELECT count(*) FROM fleet_schema_migrations"); n != len(names) {
		t.Errorf("recorded migrations %d, want %d", n, len(names))
	}
	if first := scalar[string](t, db, "SELECT name FROM fleet_schema_migrations WHERE version = 1"); first != names[0] {
		t.Errorf("version 1 recorded as %q, want %q", first, names[0])
	}
}

func TestConcurrentOpensMigrateOnce(t *testing.T) {
	dsn := pgtest.Database(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			db, err := fleet.Open(ctxT(t), dsn)
			if err == nil {
				db.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open %d: %v", i, err)
		}
	}
	db, err := fleet.Open(ctxT(t), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	names, _ := fleet.Migrations()
	if n := scalar[int](t, db, "SELECT count(*) FROM fleet_schema_migrations"); n != len(names) {
		t.Errorf("recorded migrations %d, want %d", n, len(names))
	}
}

func TestOpenErrors(t *testing.T) {
	tests := []struct {
		name, dsn, want string
		hidden          string
	}{
		{"a DSN that does not parse", "postgres://u:s3cret@db:notaport/x", "fleet:", "s3cret"},
		{"nothing listening", "postgres://u:s3cret@127.0.0.1:1/x?connect_timeout=5", "127.0.0.1", "s3cret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, err := fleet.Open(ctxT(t), tt.dsn)
			if err == nil {
				db.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), tt.hidden) {
				t.Errorf("error %q: want it to name %q and hide %q", err, tt.want, tt.hidden)
			}
		})
	}
}
