// Package daemon assembles a running bottlecap daemon — the socket, the
// ledger and its group-commit writer, the controller and, when an engine is
// given, the Docker side — and takes it down in reverse order. `bottlecap
// serve`, `bottlecap demo`, the benchmarks and the integration tests all
// start the daemon through it, so there is one start-up order to get right.
package daemon

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"slices"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/controller"
	"github.com/bot-bottle/bottlecap/enforcement"
	"github.com/bot-bottle/bottlecap/internal/retry"
	"github.com/bot-bottle/bottlecap/notify"
	"github.com/bot-bottle/bottlecap/store"
	"github.com/prometheus/client_golang/prometheus"
)

// Config is what a daemon is started from.
type Config struct {
	Socket       string
	DBPath       string
	StoreOptions []store.Option
	// Home is the bot-bottle home; freeze writes state/<slug>/ under it.
	Home     string
	Settings *budget.Settings
	// Engine, when set, carries out actions through Docker; with Discover
	// the daemon also registers bottles from container labels and events.
	Engine   enforcement.Engine
	Discover bool
	// DaemonID, when set, scopes the Docker side to the containers and
	// networks labelled bot-bottle.daemon=DaemonID; without it the daemon
	// takes only those without that label (see enforcement.LabelDaemon).
	DaemonID string
	// Enforcer, used when Engine is nil, builds the enforcer from the
	// opened ledger (the demo's, tests'); nil leaves actions pending.
	Enforcer  func(*store.DB) controller.Enforcer
	RawParser controller.RawParser
	// Limits bound connections, timeouts and ingest (zero fields:
	// controller.DefaultLimits).
	Limits  controller.Limits
	Version string
	Commit  string
	Log     *slog.Logger
	// Now and AfterFunc are the controller's clock (its defaults: the
	// system's), for tests and benchmarks that move time (a window's
	// reset, a rate guard's lift).
	Now       func() time.Time
	AfterFunc func(d time.Duration, f func()) (stop func() bool)
	// NotifyRetry spaces the attempts at a notification (zero:
	// notify.DefaultRetry), for tests that retry sooner.
	NotifyRetry retry.Backoff
	// Fleet, when set, makes the daemon a member of the fleet (SPEC
	// section 14): settings' fleet: resolved with $BOTTLECAP_FLEET_DSN and
	// the hostname (settings.ResolveFleet). Nil: the host is alone.
	Fleet *budget.Fleet
	// FleetLeaseTTL is how long a lease of the fleet budget lives in
	// Postgres without a renewal (zero: fleet.DefaultLeaseTTL), for tests
	// that watch one expire.
	FleetLeaseTTL time.Duration
}

// Daemon is a started daemon.
type Daemon struct {
	// DB is the ledger, for callers that read it beside the daemon.
	DB *store.DB
	// Server is the controller, for settings reloads and discovery.
	Server *controller.Server

	listener net.Listener
	writer   *store.Writer
	notifier *notify.Notifier
	docker   *docker
	fleet    *fleetMember
	leases   *fleetLeases
	served   chan error
}

// Start claims the socket first (so a second daemon stops before it
// touches the ledger or resumes an action), opens the ledger, builds the
// controller (which rebuilds its counters and resumes pending actions),
// starts the Docker side and serves.
func Start(ctx context.Context, cfg Config) (*Daemon, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.DaemonID != "" {
		if err := budget.ValidateName("daemon id", cfg.DaemonID); err != nil {
			return nil, err
		}
	}
	if cfg.Settings == nil {
		cfg.Settings = budget.DefaultSettings()
	}
	if err := controller.CheckPeerPidfd(); err != nil {
		cfg.Log.Error("this kernel cannot establish where socket peers live: no peer is an operator and no report is accepted", "err", err.Error())
	}
	l, err := controller.Listen(cfg.Socket)
	if err != nil {
		return nil, err
	}
	d := &Daemon{listener: l, served: make(chan error, 1)}
	if d.DB, err = store.Open(ctx, cfg.DBPath, storeOptions(cfg)...); err != nil {
		d.close()
		return nil, fmt.Errorf("open ledger %s: %w", cfg.DBPath, err)
	}
	if err := d.startFleet(ctx, cfg); err != nil {
		d.close()
		return nil, err
	}
	d.writer = store.NewWriter(d.DB)
	d.notifier = notify.Start(notify.Config{Queue: d.DB, Sinks: cfg.Settings.Notify, Host: hostname(),
		Version: cfg.Version, Log: cfg.Log, Retry: cfg.NotifyRetry})
	if d.Server, err = controller.New(ctx, d.controllerConfig(cfg)); err != nil {
		d.close()
		return nil, err
	}
	d.startLeases(cfg)
	if d.docker != nil {
		d.docker.start(d.Server, cfg.Discover)
	}
	go func() { d.served <- d.Server.Serve(l) }()
	return d, nil
}

// storeOptions are cfg's store options and a log line for each ledger file
// found readable by others and tightened: the daemon owns the ledger.
func storeOptions(cfg Config) []store.Option {
	tightened := store.WithTightened(func(path string, was fs.FileMode) {
		cfg.Log.Warn("ledger file was open to others; tightened, as only the daemon's user and root may read the ledger",
			"file", path, "was", fmt.Sprintf("%04o", was), "now", fmt.Sprintf("%04o", store.FileMode))
	})
	return append(slices.Clone(cfg.StoreOptions), tightened)
}

// controllerConfig wires the controller to the ledger and the enforcer.
func (d *Daemon) controllerConfig(cfg Config) controller.Config {
	cc := controller.Config{
		Ledger: d.DB, Ingester: d.writer, Settings: cfg.Settings, RawParser: cfg.RawParser,
		Version: cfg.Version, Commit: cfg.Commit, StorePath: d.DB.Path(), Socket: cfg.Socket, Log: cfg.Log, Limits: cfg.Limits,
		Now: cfg.Now, AfterFunc: cfg.AfterFunc, Notifier: d.notifier, Collectors: []prometheus.Collector{d.notifier},
	}
	d.prepareLeases(&cc)
	switch {
	case cfg.Engine != nil:
		d.docker = newDocker(cfg.Engine, d.DB, cfg.Home, cfg.DaemonID, cfg.Log)
		cc.Enforcer, cc.Docker, cc.ContainerBottle = d.docker.enf, d.docker.status, d.docker.containerBottle
	case cfg.Enforcer != nil:
		cc.Enforcer = cfg.Enforcer(d.DB)
	}
	return cc
}

// hostname names the host in notifications ("localhost" when its name
// cannot be read).
func hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return "localhost"
	}
	return h
}

// Served delivers the error that ended serving, if it ends before Stop.
func (d *Daemon) Served() <-chan error { return d.served }

// Stop stops accepting connections and lets in-flight requests and their
// commits finish until ctx ends, then stops the Docker side (actions still
// running stay pending in the journal), the writer and the ledger. It
// returns ctx's error when requests were cut off.
func (d *Daemon) Stop(ctx context.Context) error {
	err := d.Server.Shutdown(ctx)
	<-d.served
	d.close()
	return err
}

// close releases what was opened, in reverse order.
func (d *Daemon) close() {
	if d.Server == nil {
		d.listener.Close() // never served, so Shutdown will not close (and unlink) it
	}
	if d.docker != nil {
		d.docker.stop()
	}
	if d.notifier != nil {
		d.notifier.Stop() // after the enforcer: its last outcomes are notices
	}
	if d.writer != nil {
		d.writer.Close()
	}
	d.stopLeases() // returns what the leases have left, through the membership
	d.stopFleet()  // after the writer's last commits, before the ledger closes
	if d.DB != nil {
		d.DB.Close()
	}
}
