package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/bot-bottle/bottlecap/controller"
	"github.com/bot-bottle/bottlecap/daemon"
	"github.com/bot-bottle/bottlecap/internal/retry"
	"github.com/bot-bottle/bottlecap/settings"
	"github.com/bot-bottle/bottlecap/simhost"
	"github.com/bot-bottle/bottlecap/store"
	"github.com/bot-bottle/bottlecap/tui"
)

// demoBanner is what the dashboard's header says for the whole demo.
const demoBanner = "DEMO: simulated agents, no containers are touched"

// demoCommand is `bottlecap demo`: a daemon on a temporary home with
// simhost's sidecars reporting realistic usage, and the dashboard on top.
func (m *Main) demoCommand() *cobra.Command {
	var o demoOptions
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "A simulated host with the dashboard; touches no containers",
		Long: "Runs a daemon on a temporary home, with simulated sidecars reporting usage for a handful of bottles, " +
			"and the dashboard on top. Its enforcer only records what it would do; q quits and removes the home.",
		Args: positional(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.speed <= 0 {
				return usageErrorf("--speed %g: want more than 0", o.speed)
			}
			return m.runDemo(cmd.Context(), o)
		},
	}
	cmd.Flags().Float64Var(&o.speed, "speed", 1, "how many times faster than real agents the simulated sidecars report")
	cmd.Flags().BoolVar(&o.noDash, "no-dash", false, "run without the dashboard, printing the audit log")
	cmd.Flags().DurationVar(&o.duration, "duration", time.Minute, "with --no-dash: how long to run")
	return cmd
}

// demoOptions are demo's flags.
type demoOptions struct {
	speed    float64
	noDash   bool
	duration time.Duration
}

func (m *Main) runDemo(ctx context.Context, o demoOptions) error {
	home, err := os.MkdirTemp("", "bcdemo") // short: unix socket paths are limited
	if err != nil {
		return err
	}
	defer func() {
		os.RemoveAll(home)
		fmt.Fprintf(m.Stdout, "demo: removed %s\n", home)
	}()
	fmt.Fprintf(m.Stdout, "bottlecap demo: a daemon on the temporary home %s\n"+
		"with simulated sidecars reporting usage for %d bottles. It touches no containers:\n"+
		"its enforcer only records in the audit log what it would do (\"would cut off …\").\n",
		home, len(simhost.Bottles))
	d, err := startDemoDaemon(ctx, home, time.Duration(float64(time.Second)/o.speed))
	if err != nil {
		return err
	}
	defer d.stop()
	sims, err := simhost.StartSidecars(ctx, d.sock, o.speed)
	if err != nil {
		return err
	}
	defer sims.Stop()
	if o.noDash {
		return simhost.Tail(ctx, d.DB, m.Stdout, o.duration)
	}
	return m.demoDash(ctx, d)
}

// demoDash shows the intro for a moment, then runs the dashboard over the
// demo's home exactly as `bottlecap dash` would.
func (m *Main) demoDash(ctx context.Context, d *demoDaemon) error {
	fmt.Fprintln(m.Stdout, "Starting the dashboard (q quits and removes the temporary home)…")
	if retry.Sleep(ctx, 3*time.Second) != nil {
		return nil
	}
	dash, err := openDash(ctx, filepath.Join(d.home, "bot-bottle.db"), filepath.Join(d.home, "settings.yml"), d.sock)
	if err != nil {
		return err
	}
	defer dash.Close()
	o := dash.Options()
	o.Banner, o.Refresh, o.Input, o.Output = demoBanner, time.Second, m.Stdin, m.Stdout
	return tui.Run(ctx, o)
}

// demoDaemon is the demo's daemon, in-process over a real ledger, with
// simhost's Recorder as its enforcer.
type demoDaemon struct {
	*daemon.Daemon
	home, sock string
	enf        *simhost.Recorder
	logFile    *os.File
}

// startDemoDaemon runs a real daemon in-process on home: simhost's
// settings, a real ledger and socket, and the Recorder, which finishes each
// action after delay. It logs to home/bottlecap.log, never to the terminal.
func startDemoDaemon(ctx context.Context, home string, delay time.Duration) (*demoDaemon, error) {
	d := &demoDaemon{home: home, sock: filepath.Join(home, "run", "bottlecap.sock")}
	settingsPath := filepath.Join(home, "settings.yml")
	if err := os.WriteFile(settingsPath, []byte(simhost.Settings), 0o600); err != nil {
		return nil, err
	}
	st, err := settings.Load(settingsPath)
	if err != nil {
		return nil, err
	}
	if d.logFile, err = os.Create(filepath.Join(home, "bottlecap.log")); err != nil {
		return nil, err
	}
	d.Daemon, err = daemon.Start(ctx, daemon.Config{
		Socket: d.sock, DBPath: filepath.Join(home, "bot-bottle.db"), StoreOptions: []store.Option{store.WithSynchronousNormal()},
		Home: home, Settings: st, RawParser: daemon.ParseRaw, Version: currentBuild().Version + " (demo)", Commit: currentBuild().Commit,
		Log: slog.New(slog.NewTextHandler(d.logFile, nil)),
		Enforcer: func(db *store.DB) controller.Enforcer {
			d.enf = simhost.NewRecorder(db, delay)
			return d.enf
		},
	})
	if err != nil {
		d.logFile.Close()
		return nil, err
	}
	return d, nil
}

// stop ends the enforcer, the daemon and the ledger, in that order; the
// sidecars are stopped first by their own defer.
func (d *demoDaemon) stop() {
	d.enf.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	d.Daemon.Stop(ctx) // bounded; the demo's ledger is thrown away anyway
	d.logFile.Close()
}
