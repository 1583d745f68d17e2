// Package daemontest runs a real bottlecap daemon for tests: a real
// unix socket in a short temporary directory, a real SQLite ledger, and a
// client dialling it, all removed when the test ends.
package daemontest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/client"
	"github.com/bot-bottle/bottlecap/controller"
	"github.com/bot-bottle/bottlecap/daemon"
	"github.com/bot-bottle/bottlecap/enforcement"
	"github.com/bot-bottle/bottlecap/enforcement/dockertest"
	"github.com/bot-bottle/bottlecap/internal/retry"
	"github.com/bot-bottle/bottlecap/internal/testutil"
	"github.com/bot-bottle/bottlecap/store"
)

// Options shape the daemon; the zero value runs on default settings, with
// no enforcer (actions stay pending) and no raw-body parser.
type Options struct {
	Settings  *budget.Settings
	Enforcer  controller.Enforcer
	RawParser controller.RawParser
	// Limits shorten the daemon's timeouts and caps for tests of them.
	Limits controller.Limits
	// Engine, when set, is the Docker engine the daemon enforces through
	// (Enforcer is then not used); with Discover it also registers the
	// bottles of the containers the test made (dockertest), and only
	// those: the daemon runs with the test's daemon id
	// (dockertest.DaemonID), so it neither takes a user's containers on
	// the same engine nor is taken by a user's daemon.
	Engine   enforcement.Engine
	Discover bool
	// Clock, when set, is the controller's clock (its Now and AfterFunc).
	Clock *testutil.Clock
	// NotifyRetry spaces notification attempts (zero: the daemon's).
	NotifyRetry retry.Backoff
	// Fleet makes the daemon a fleet member (SPEC section 14), its lease
	// living FleetLeaseTTL (zero: the daemon's default).
	Fleet         *budget.Fleet
	FleetLeaseTTL time.Duration
}

// Daemon is a daemon started for one test.
type Daemon struct {
	*daemon.Daemon
	Dir    string
	Sock   string
	Client *client.Client

	t    testing.TB
	opts Options
}

// Start runs a daemon until the test ends. Its directory is made with
// os.MkdirTemp("", …): unix socket paths are limited to 108 bytes, too
// short for t.TempDir under some runners.
func Start(t testing.TB, o Options) *Daemon {
	t.Helper()
	dir, err := os.MkdirTemp("", "bc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if o.Settings == nil {
		o.Settings = budget.DefaultSettings()
	}
	d := &Daemon{Dir: dir, Sock: filepath.Join(dir, "run", "bottlecap.sock"), t: t, opts: o}
	d.Restart()
	t.Cleanup(d.Stop)
	return d
}

// Restart starts the daemon again on the same socket and ledger (after
// Stop), as a real restart would.
func (d *Daemon) Restart() {
	d.t.Helper()
	cfg := daemon.Config{Socket: d.Sock, DBPath: filepath.Join(d.Dir, "bot-bottle.db"), Home: d.Dir,
		Settings: d.opts.Settings, RawParser: d.opts.RawParser, Limits: d.opts.Limits, Version: "test",
		Engine: d.opts.Engine, Discover: d.opts.Discover, DaemonID: dockertest.DaemonID(d.t), NotifyRetry: d.opts.NotifyRetry,
		Fleet: d.opts.Fleet, FleetLeaseTTL: d.opts.FleetLeaseTTL}
	if d.opts.Clock != nil {
		cfg.Now, cfg.AfterFunc = d.opts.Clock.Now, d.opts.Clock.AfterFunc
	}
	if d.opts.Enforcer != nil {
		cfg.Enforcer = func(*store.DB) controller.Enforcer { return d.opts.Enforcer }
	}
	var err error
	if d.Daemon, err = daemon.Start(context.Background(), cfg); err != nil {
		d.t.Fatal(err)
	}
	d.Client = client.New(d.Sock, client.WithRetry(0))
}

// SetSettings puts settings in force as a reload does, and keeps them for
// the next Restart, as a settings file would.
func (d *Daemon) SetSettings(s *budget.Settings) {
	d.opts.Settings = s
	if _, err := d.Server.SetSettings(s); err != nil {
		d.t.Fatalf("set settings: %v", err)
	}
}

// Stop shuts the daemon down, letting requests in flight finish; stopping
// a stopped daemon does nothing.
func (d *Daemon) Stop() {
	if d.Daemon == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.Daemon.Stop(ctx); err != nil {
		d.t.Errorf("stop daemon: %v", err)
	}
	d.Client.Close()
	d.Daemon = nil
}
