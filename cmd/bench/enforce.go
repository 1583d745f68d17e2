package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/client"
	"github.com/bot-bottle/bottlecap/daemon"
	"github.com/bot-bottle/bottlecap/enforcement"
	"github.com/bot-bottle/bottlecap/enforcement/dockerlab"
)

func init() { register("enforce", benchEnforce) }

const (
	enforceCrossings = 200 // bottles, each crossing its budget once
	enforceBudget    = 1000
	// enforceWait bounds the wait for one crossing's engine call.
	enforceWait = 30 * time.Second
)

// benchEnforce measures how soon a committed crossing reaches the engine:
// against a fake engine that notes its first call (no Docker latency), and
// against the real engine, until the container is off its network.
func benchEnforce(ctx context.Context, r *runner) error {
	lat, err := firstCallLatencies(ctx)
	if err != nil {
		return fmt.Errorf("fake engine: %w", err)
	}
	slices.Sort(lat)
	r.report("enforce_first_call_p50_ms", round3(msOf(lat[len(lat)/2])), "ms")
	r.report("enforce_first_call_p99_ms", round3(msOf(lat[len(lat)*99/100])), "ms")
	return benchRealDisconnect(ctx, r)
}

// firstCallLatencies registers enforceCrossings bottles and, one at a
// time, sends the report that crosses each budget, timing from just before
// the report is sent to the fake engine's first call for that cutoff.
func firstCallLatencies(ctx context.Context) ([]time.Duration, error) {
	eng := dockerlab.NewFirstCallEngine()
	d, err := startEnforceDaemon(ctx, eng, benchDaemonID)
	if err != nil {
		return nil, err
	}
	defer d.stop()
	c := client.New(d.sock)
	defer c.Close()
	lat := make([]time.Duration, 0, enforceCrossings)
	for i := range enforceCrossings {
		slug := fmt.Sprintf("cross-%03d", i)
		if _, err := c.PutBottle(ctx, slug, api.BottleRequest{Budget: budget.Limits{"claude": budget.Lifetime(enforceBudget)}}); err != nil {
			return nil, err
		}
		t0 := time.Now()
		if _, err := c.Ingest(ctx, []api.Report{crossingReport(slug)}); err != nil {
			return nil, err
		}
		select {
		case t1 := <-eng.Calls:
			lat = append(lat, t1.Sub(t0))
		case <-time.After(enforceWait):
			return nil, fmt.Errorf("crossing of %s: no engine call within %s", slug, enforceWait)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return lat, nil
}

// crossingReport is one report that exhausts a bottle's budget alone.
func crossingReport(slug string) api.Report {
	return api.Report{Report: budget.Report{ID: "x-" + slug, Bottle: slug, Agent: "impl", Provider: "claude",
		Usage: budget.Usage{Input: enforceBudget + 1}, Complete: true}}
}

// benchDaemonID is the daemon id of the benchmark's daemons over a fake
// engine: were one ever given the real engine, it would still take none
// of a user's containers.
const benchDaemonID = "bench"

// enforceDaemon is an in-process daemon whose enforcer is the Docker
// runner over the given engine, wired as `bottlecap serve` wires it
// (package daemon), without discovery.
type enforceDaemon struct {
	dir  string
	sock string
	d    *daemon.Daemon
}

// startEnforceDaemon starts it with daemonID: the id of the containers it
// may act on (none but those of that id).
func startEnforceDaemon(ctx context.Context, engine enforcement.Engine, daemonID string) (*enforceDaemon, error) {
	dir, err := os.MkdirTemp("", "bce") // short: unix socket paths are limited
	if err != nil {
		return nil, err
	}
	e := &enforceDaemon{dir: dir, sock: filepath.Join(dir, "run", "bottlecap.sock")}
	e.d, err = daemon.Start(ctx, daemon.Config{Socket: e.sock, DBPath: filepath.Join(dir, "bot-bottle.db"), Home: dir,
		Settings: budget.DefaultSettings(), Engine: engine, DaemonID: daemonID})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return e, nil
}

func (e *enforceDaemon) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e.d.Stop(ctx)
	os.RemoveAll(e.dir)
}

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
