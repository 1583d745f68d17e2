// Package pgtest gives the fleet's tests a real Postgres (package pglab):
// a fresh database of their own (Database) on one server shared by the
// test binary (Shared), or a server of their own (New) when they restart
// or stop it. Without the Postgres binaries a test is skipped, or failed
// under BOTTLECAP_REQUIRE_POSTGRES=1 (.ci/run and make test set it).
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/internal/pglab"
)

// EnvRequire names the variable that turns "no Postgres binaries" from a
// skip into a failure.
const EnvRequire = "BOTTLECAP_REQUIRE_POSTGRES"

// Server is a running Postgres (pglab.Server).
type Server = pglab.Server

// ErrNoPostgres is Start's error when no Postgres binaries are installed.
var ErrNoPostgres = pglab.ErrNoPostgres

// Start starts a server the caller stops (pglab.Start).
func Start() (*Server, error) { return pglab.Start() }

// DSNAt is the URL of database db on the server at addr (pglab.DSNAt).
func DSNAt(addr, db string) string { return pglab.DSNAt(addr, db) }

// Via is dsn reached through a proxy at addr (pglab.Via).
func Via(dsn, addr string) string { return pglab.Via(dsn, addr) }

// shared is the test binary's one server, started on first use.
var shared struct {
	sync.Mutex
	srv *Server
	err error
}

// Main runs a package's tests from its TestMain and stops the shared
// server afterwards (removing its directory), returning m.Run's exit code,
// or 1 if the server would not stop.
func Main(m *testing.M) int {
	code := m.Run()
	if err := Cleanup(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// Cleanup stops the shared server if one was started.
func Cleanup() error {
	shared.Lock()
	defer shared.Unlock()
	if shared.srv == nil {
		return nil
	}
	err := shared.srv.Stop()
	shared.srv = nil
	return err
}

// Shared is the test binary's server, started on first use. The package's
// TestMain must call Main (or Cleanup), which stops it.
func Shared(t testing.TB) *Server {
	t.Helper()
	shared.Lock()
	defer shared.Unlock()
	if shared.srv == nil && shared.err == nil {
		shared.srv, shared.err = pglab.Start()
	}
	if shared.err != nil {
		gate(t, shared.err)
	}
	return shared.srv
}

// New is a server of t's own, stopped and removed when t ends: for a test
// that restarts or stops it.
func New(t testing.TB) *Server {
	t.Helper()
	s, err := pglab.Start()
	if err != nil {
		gate(t, err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// gate skips t for missing binaries (unless they are required) and fails
// it for anything else.
func gate(t testing.TB, err error) {
	t.Helper()
	switch {
	case errors.Is(err, pglab.ErrNoPostgres) && os.Getenv(EnvRequire) != "1":
		t.Skipf("%v; set %s=1 to fail instead", err, EnvRequire)
	case errors.Is(err, pglab.ErrNoPostgres):
		t.Fatalf("Postgres required (%s=1): %v", EnvRequire, err)
	default:
		t.Fatal(err)
	}
}

// Database creates a fresh database on the shared server for t, dropped
// when t ends, and returns its DSN.
func Database(t testing.TB) string {
	t.Helper()
	return DatabaseOn(t, Shared(t))
}

// DatabaseOn creates a fresh database on s for t, dropped when t ends
// (unless s is stopped by then), and returns its DSN.
func DatabaseOn(t testing.TB, s *Server) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name, err := s.CreateDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if s.Stopped() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.DropDatabase(ctx, name); err != nil {
			t.Error(err)
		}
	})
	return s.DSN(name)
}
