package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"
)

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

// Shared is the test binary's server, started on first use. Without
// Postgres binaries the test is skipped, or failed under
// BOTTLECAP_REQUIRE_POSTGRES=1. The package's TestMain must call Main
// (or Cleanup), which stops it.
func Shared(t testing.TB) *Server {
	t.Helper()
	shared.Lock()
	defer shared.Unlock()
	if shared.srv == nil && shared.err == nil {
		shared.srv, shared.err = Start()
	}
	if shared.err != nil {
		gate(t, shared.err)
	}
	return shared.srv
}

// New is a server of t's own, stopped and removed when t ends: for a test
// that restarts or stops it. It skips or fails as Shared does.
func New(t testing.TB) *Server {
	t.Helper()
	s, err := Start()
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
	case errors.Is(err, ErrNoPostgres) && os.Getenv(EnvRequire) != "1":
		t.Skipf("%v; set %s=1 to fail instead", err, EnvRequire)
	case errors.Is(err, ErrNoPostgres):
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
		if s.isStopped() {
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

func (s *Server) isStopped() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopped
}

// randHex is 8 random bytes in hex, for database names.
func randHex() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}
