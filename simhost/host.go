package simhost

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/client"
	"github.com/bot-bottle/bottlecap/controller"
	"github.com/bot-bottle/bottlecap/daemon"
	"github.com/bot-bottle/bottlecap/internal/retry"
	"github.com/bot-bottle/bottlecap/settings"
	"github.com/bot-bottle/bottlecap/store"
)

// Config is what a simulated host needs.
type Config struct {
	// Home is the host's bottlecap home: Settings, the ledger, the socket
	// (keep the path short: unix socket paths are limited) and the log.
	Home string
	// Speed is how many times faster than real agents the sidecars report
	// and the Recorder acts (> 0).
	Speed float64
	// Version is what the daemon reports as its version.
	Version string
	// Idle leaves the host empty: no bottle registered, no sidecar, only
	// the daemon and the Recorder, for a test that reports by itself.
	Idle bool
}

// Host is a running simulated host: a real daemon in-process over a real
// ledger and socket, the Recorder as its enforcer, and one Sidecar per
// bottle of Bottles.
type Host struct {
	Socket, DBPath, SettingsPath string

	d       *daemon.Daemon
	enf     *Recorder
	cancel  context.CancelFunc
	sims    sync.WaitGroup
	logFile *os.File
}

// Start writes Settings to cfg.Home, starts the daemon there, registers
// the bottles and starts their sidecars (unless cfg.Idle). The daemon logs to
// Home/bottlecap.log, never to the terminal.
func Start(ctx context.Context, cfg Config) (*Host, error) {
	if cfg.Speed <= 0 {
		return nil, fmt.Errorf("simulated host: speed %v: %w", cfg.Speed, budget.ErrInvalid)
	}
	h, err := startDaemon(ctx, cfg, time.Duration(float64(time.Second)/cfg.Speed))
	if err != nil {
		return nil, err
	}
	if cfg.Idle {
		return h, nil
	}
	if err := h.populate(ctx, cfg.Speed); err != nil {
		h.Stop()
		return nil, err
	}
	return h, nil
}

// startDaemon runs the daemon on cfg.Home with the Recorder, which
// finishes each action after delay.
func startDaemon(ctx context.Context, cfg Config, delay time.Duration) (*Host, error) {
	h := &Host{Socket: filepath.Join(cfg.Home, "run", "bottlecap.sock"),
		DBPath: filepath.Join(cfg.Home, "bot-bottle.db"), SettingsPath: filepath.Join(cfg.Home, "settings.yml")}
	if err := os.WriteFile(h.SettingsPath, []byte(Settings), 0o600); err != nil {
		return nil, err
	}
	st, err := settings.Load(h.SettingsPath)
	if err != nil {
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(cfg.Home, "bottlecap.log"))
	if err != nil {
		return nil, err
	}
	h.logFile = logFile
	h.d, err = daemon.Start(ctx, daemon.Config{
		Socket: h.Socket, DBPath: h.DBPath, StoreOptions: []store.Option{store.WithSynchronousNormal()},
		Home: cfg.Home, Settings: st, RawParser: daemon.ParseRaw, Version: cfg.Version,
		Log: slog.New(slog.NewTextHandler(logFile, nil)),
		Enforcer: func(db *store.DB) controller.Enforcer {
			h.enf = NewRecorder(db, delay)
			return h.enf
		},
	})
	if err != nil {
		logFile.Close()
		return nil, err
	}
	return h, nil
}

// populate registers the bottles and starts one sidecar per bottle.
func (h *Host) populate(ctx context.Context, speed float64) error {
	c := client.New(h.Socket, client.WithRetry(5*time.Second))
	for _, b := range Bottles {
		if !b.Register {
			continue
		}
		req := api.BottleRequest{Agent: b.Agent, Name: b.Agent, Parent: b.Parent, Budget: b.Budget, Shutdown: b.Shutdown}
		if _, err := c.PutBottle(ctx, b.Slug, req); err != nil {
			c.Close()
			return fmt.Errorf("register %s: %w", b.Slug, err)
		}
	}
	simCtx, cancel := context.WithCancel(ctx)
	h.cancel = cancel
	for _, b := range Bottles {
		h.sims.Add(1)
		go func() { defer h.sims.Done(); b.Sidecar(simCtx, c, speed) }()
	}
	go func() { h.sims.Wait(); c.Close() }()
	return nil
}

// stopGrace bounds the daemon's shutdown, as `bottlecap serve` bounds it.
const stopGrace = 10 * time.Second

// Stop ends the sidecars, the enforcer, the daemon and the ledger, in that
// order.
func (h *Host) Stop() {
	if h.cancel != nil {
		h.cancel()
	}
	h.sims.Wait()
	h.enf.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), stopGrace)
	defer cancel()
	h.d.Stop(ctx) // bounded; a simulated host's ledger is thrown away anyway
	h.logFile.Close()
}

// Tail prints the audit log as it grows until ctx ends or for duration.
func (h *Host) Tail(ctx context.Context, w io.Writer, duration time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, duration)
	defer cancel()
	var last int64
	for {
		entries, err := h.d.DB.Audit(context.Background(), "", 200)
		if err != nil {
			return err
		}
		for i := len(entries) - 1; i >= 0; i-- { // newest first
			if e := entries[i]; e.Seq > last {
				fmt.Fprintf(w, "%s  %-14s %-18s %s\n", e.TS.Local().Format("15:04:05"), e.Kind, e.Bottle, e.Detail)
				last = e.Seq
			}
		}
		if retry.Sleep(ctx, 200*time.Millisecond) != nil {
			return nil
		}
	}
}
