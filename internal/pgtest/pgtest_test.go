package pgtest_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bot-bottle/bottlecap/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func exec(t *testing.T, conn *pgx.Conn, sql string) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func count(t *testing.T, conn *pgx.Conn, sql string) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(context.Background(), sql).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func TestDatabasesAreFreshAndSeparate(t *testing.T) {
	a, b := connect(t, pgtest.Database(t)), connect(t, pgtest.Database(t))
	exec(t, a, "CREATE TABLE marks (n int)")
	exec(t, a, "INSERT INTO marks VALUES (1), (2)")
	if got := count(t, a, "SELECT count(*) FROM marks"); got != 2 {
		t.Errorf("rows %d, want 2", got)
	}
	if got := count(t, b, "SELECT count(*) FROM pg_tables WHERE tablename = 'marks'"); got != 0 {
		t.Errorf("the second database sees %d tables named marks, want 0", got)
	}
}

func TestTheServerIsPostgresOnItsOwnPort(t *testing.T) {
	s := pgtest.Shared(t)
	conn := connect(t, pgtest.Database(t))
	var version string
	if err := conn.QueryRow(context.Background(), "SHOW server_version").Scan(&version); err != nil {
		t.Fatal(err)
	}
	if version == "" {
		t.Error("empty server_version")
	}
	if got := conn.PgConn().Conn().RemoteAddr().String(); got != s.Addr() {
		t.Errorf("connected to %s, want the server's %s", got, s.Addr())
	}
}

func TestRestartKeepsCommittedRowsAndBreaksConnections(t *testing.T) {
	s := pgtest.New(t)
	dsn := pgtest.DatabaseOn(t, s)
	before := connect(t, dsn)
	exec(t, before, "CREATE TABLE marks (n int)")
	exec(t, before, "INSERT INTO marks VALUES (1)")
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if _, err := before.Exec(context.Background(), "SELECT 1"); err == nil {
		t.Error("a connection from before the restart still works")
	}
	after := connect(t, dsn)
	if got := count(t, after, "SELECT count(*) FROM marks"); got != 1 {
		t.Errorf("rows after restart %d, want 1", got)
	}
}

func TestStopRemovesTheServer(t *testing.T) {
	s, err := pgtest.Start()
	if errors.Is(err, pgtest.ErrNoPostgres) && os.Getenv(pgtest.EnvRequire) != "1" {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	dir := s.Dir()
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("directory %s after Stop: %v, want it gone", dir, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if conn, err := pgx.Connect(ctx, s.DSN("postgres")); err == nil {
		conn.Close(ctx)
		t.Error("the server still accepts connections after Stop")
	}
	if err := s.Stop(); err != nil {
		t.Errorf("a second Stop: %v", err)
	}
}
