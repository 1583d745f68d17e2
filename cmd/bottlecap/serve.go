package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/client"
	"github.com/bot-bottle/bottlecap/controller"
	"github.com/bot-bottle/bottlecap/meter/usage"
	"github.com/bot-bottle/bottlecap/store"
)

// shutdownGrace bounds how long in-flight requests and commits may take to
// finish once a shutdown signal arrives.
const shutdownGrace = 10 * time.Second

// serveFlags are `bottlecap serve`'s flags; settings and environment give
// the defaults (containerd's order: defaults, then file, then flags).
type serveFlags struct {
	socket   string
	db       string
	settings string
	syncMode string
	logLevel string
	docker   bool
}

// runServe runs the daemon in the foreground until ctx is cancelled.
func (m *Main) runServe(ctx context.Context, args []string) error {
	var f serveFlags
	fs := m.flags("serve")
	fs.StringVar(&f.socket, "socket", "", "socket path (default: $BOTTLECAP_SOCKET, settings socket:, or $BOT_BOTTLE_HOME/run/bottlecap.sock)")
	fs.StringVar(&f.db, "db", "", "ledger path (default $BOT_BOTTLE_HOME/bot-bottle.db)")
	fs.StringVar(&f.settings, "settings", "", "settings file (default $BOT_BOTTLE_HOME/settings.yml)")
	fs.StringVar(&f.syncMode, "synchronous", "full", "SQLite synchronous mode: full (every commit survives power loss) or normal")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.BoolVar(&f.docker, "docker", true, "enforce through the Docker engine named by DOCKER_HOST (false: actions are journaled and stay pending)")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		return errUsage
	}
	tuneGC(m.Getenv)
	d, err := m.startDaemon(ctx, f)
	if err != nil {
		return err
	}
	return d.run(ctx)
}

// daemonGCPercent trades a little memory for the gate's tail latency. The
// daemon's live heap is small (tens of MB with a thousand bottles), so at
// the default GOGC=100 the steady garbage of requests makes the collector
// run many times a second, and the slowest verdicts are the ones that wait
// on it (make bench: verdict_p99_us drops about threefold at 400). The soft
// memory limit keeps the larger target from letting the heap run away.
const (
	daemonGCPercent  = 400
	daemonSoftMemory = 256 << 20
)

// tuneGC applies the daemon's GC settings unless the operator chose their
// own through GOGC or GOMEMLIMIT.
func tuneGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(daemonGCPercent)
	}
	if getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(daemonSoftMemory)
	}
}

// daemon is a started `bottlecap serve`: everything it opened, to be closed
// in reverse order.
type daemon struct {
	log          *slog.Logger
	srv          *controller.Server
	db           *store.DB
	writer       *store.Writer
	docker       *docker
	listener     net.Listener
	settingsPath string
	settingsMod  time.Time
	served       chan error
}

func (m *Main) startDaemon(ctx context.Context, f serveFlags) (*daemon, error) {
	log, err := m.logger(f.logLevel)
	if err != nil {
		return nil, err
	}
	home := m.home()
	if f.settings == "" {
		f.settings = m.settingsPath()
	}
	st, err := budget.LoadSettings(f.settings)
	if err != nil {
		return nil, err
	}
	if f.db == "" {
		f.db = filepath.Join(home, "bot-bottle.db")
	}
	socket := client.ResolveSocket(f.socket, m.Getenv(client.EnvSocket), st.Socket, home)
	if err := os.MkdirAll(home, 0o750); err != nil {
		return nil, fmt.Errorf("create home %s: %w", home, err)
	}
	var opts []store.Option
	switch f.syncMode {
	case "full":
	case "normal":
		opts = append(opts, store.WithSynchronousNormal())
	default:
		return nil, fmt.Errorf("--synchronous %q: want full or normal", f.syncMode)
	}
	// Claim the socket first: a second daemon must stop here, before it
	// touches the ledger or resumes any action.
	l, err := controller.Listen(socket)
	if err != nil {
		return nil, err
	}
	d := &daemon{log: log, listener: l, settingsPath: f.settings, settingsMod: modTime(f.settings), served: make(chan error, 1)}
	if d.db, err = store.Open(ctx, f.db, opts...); err != nil {
		d.close()
		return nil, fmt.Errorf("open ledger %s: %w", f.db, err)
	}
	d.writer = store.NewWriter(d.db)
	cfg := controller.Config{
		Store: d.db, Ingester: d.writer, Settings: st, RawParser: parseRaw,
		Version: Version, StorePath: f.db, Socket: socket, Log: log,
	}
	if f.docker {
		if d.docker, err = newDocker(d.db, home, log); err != nil {
			d.close()
			return nil, err
		}
		cfg.Enforcer, cfg.Docker, cfg.ContainerBottle = d.docker.enf, d.docker.status, d.docker.containerBottle
	}
	if d.srv, err = controller.New(ctx, cfg); err != nil {
		d.close()
		return nil, err
	}
	if d.docker != nil {
		d.docker.start(d.srv)
	}
	go func() { d.served <- d.srv.Serve(l) }()
	log.Info("bottlecap ready", "socket", socket, "ledger", f.db, "settings", f.settings, "version", Version)
	return d, nil
}

// run waits for a shutdown signal (ctx), reloading settings on SIGHUP and
// when the settings file changes.
func (d *daemon) run(ctx context.Context) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	poll := time.NewTicker(2 * time.Second)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return d.shutdown()
		case err := <-d.served:
			d.close()
			return fmt.Errorf("serve: %w", err)
		case <-hup:
			d.reload("SIGHUP")
		case <-poll.C:
			if mt := modTime(d.settingsPath); !mt.Equal(d.settingsMod) {
				d.settingsMod = mt
				d.reload("settings file changed")
			}
		}
	}
}

// reload re-reads settings; a bad file keeps the old settings in force.
func (d *daemon) reload(why string) {
	st, err := budget.LoadSettings(d.settingsPath)
	if err != nil {
		d.log.Error("settings not reloaded; the previous settings stay in force", "why", why, "err", err.Error())
		return
	}
	d.srv.SetSettings(st)
	d.log.Info("settings reloaded", "why", why, "file", d.settingsPath)
}

// shutdown stops the API (finishing in-flight requests and their commits
// within shutdownGrace), then the writer, then the ledger.
func (d *daemon) shutdown() error {
	d.log.Info("shutting down")
	ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	err := d.srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		d.log.Warn("requests still in flight after the grace period were cut off")
	}
	d.close()
	return nil
}

func (d *daemon) close() {
	if d.srv == nil && d.listener != nil {
		d.listener.Close() // never served: Shutdown would not close it
	}
	if d.docker != nil {
		d.docker.stop()
	}
	if d.writer != nil {
		d.writer.Close()
	}
	if d.db != nil {
		d.db.Close()
	}
}

// parseRaw normalises raw report bodies with the metering parsers.
func parseRaw(format string, body []byte) (controller.RawUsage, error) {
	f, err := usage.ParseFormat(format)
	if err != nil {
		return controller.RawUsage{}, fmt.Errorf("format: %w", err)
	}
	res, err := usage.ParseAll(f, "", bytes.NewReader(body))
	if err != nil {
		return controller.RawUsage{}, err
	}
	return controller.RawUsage{Usage: res.Usage, Complete: res.Complete, Model: res.Model, ID: res.ID}, nil
}

func (m *Main) logger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(m.Stderr, &slog.HandlerOptions{Level: l})), nil
}

func modTime(path string) time.Time {
	fi, err := os.Stat(path)
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}
