package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/bot-bottle/bottlecap/internal/retry"
	"github.com/bot-bottle/bottlecap/simhost"
	"github.com/bot-bottle/bottlecap/tui"
)

// demoBanner is what the dashboard's header says for the whole demo.
const demoBanner = "DEMO: simulated agents, no containers are touched"

// runDemo implements `bottlecap demo`: a simulated host (a daemon on a
// temporary home with simulated sidecars reporting realistic usage), and
// the dashboard on top.
func (m *Main) runDemo(ctx context.Context, args []string) error {
	fs := m.flags("demo")
	speed := fs.Float64("speed", 1, "how many times faster than real agents the simulated sidecars report")
	noDash := fs.Bool("no-dash", false, "run without the dashboard, printing the audit log")
	duration := fs.Duration("duration", time.Minute, "with --no-dash: how long to run")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 || *speed <= 0 {
		fmt.Fprintln(m.Stderr, "usage: bottlecap demo [--speed X] [--no-dash [--duration D]]")
		return errUsage
	}
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
	h, err := simhost.Start(ctx, simhost.Config{Home: home, Speed: *speed, Version: Version + " (demo)"})
	if err != nil {
		return err
	}
	defer h.Stop()
	if *noDash {
		return h.Tail(ctx, m.Stdout, *duration)
	}
	return m.demoDash(ctx, h)
}

// demoDash shows the intro for a moment, then runs the dashboard over the
// demo's home exactly as `bottlecap dash` would.
func (m *Main) demoDash(ctx context.Context, h *simhost.Host) error {
	fmt.Fprintln(m.Stdout, "Starting the dashboard (q quits and removes the temporary home)…")
	if retry.Sleep(ctx, 3*time.Second) != nil {
		return nil
	}
	dash, err := openDash(ctx, h.DBPath, h.SettingsPath, h.Socket)
	if err != nil {
		return err
	}
	defer dash.Close()
	o := dash.Options()
	o.Banner, o.Refresh, o.Input, o.Output = demoBanner, time.Second, m.Stdin, m.Stdout
	return tui.Run(ctx, o)
}
