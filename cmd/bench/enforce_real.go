package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/client"
	"github.com/bot-bottle/bottlecap/enforcement/dockerlab"
)

// enforceRealRuns is how many bottles are cut off on the real engine; the
// median is reported.
const enforceRealRuns = 7

// benchRealDisconnect times, on the real engine, each crossing from just
// before its report is sent to the moment the engine disconnected the
// bottle's container from its network (the time on the engine's event). Without an engine it says so and reports
// nothing.
func benchRealDisconnect(ctx context.Context, r *runner) error {
	cli, err := dockerlab.Connect()
	if err != nil {
		r.logf("enforce_real_disconnect_ms: skipped, no docker engine answers: %v", err)
		return nil
	}
	w, err := dockerlab.NewBottles(ctx, cli, enforceRealRuns)
	if err != nil {
		return err
	}
	defer w.Remove()
	d, err := startEnforceDaemon(ctx, cli, w.DaemonID())
	if err != nil {
		return err
	}
	defer d.stop()
	c := client.New(d.sock)
	defer c.Close()
	var lat []time.Duration
	for i := range enforceRealRuns {
		dt, err := cutOne(ctx, c, w, i)
		if err != nil {
			return err
		}
		lat = append(lat, dt)
	}
	slices.Sort(lat)
	r.report("enforce_real_disconnect_ms", round3(msOf(lat[len(lat)/2])), "ms")
	return nil
}

// cutOne registers bottle i, crosses its budget and waits for the engine
// to disconnect its container.
func cutOne(ctx context.Context, c *client.Client, w *dockerlab.Bottles, i int) (time.Duration, error) {
	slug := w.Slug(i)
	if _, err := c.PutBottle(ctx, slug, api.BottleRequest{Budget: budget.Limits{"claude": budget.Lifetime(enforceBudget)}}); err != nil {
		return 0, err
	}
	t0 := time.Now()
	if _, err := c.Ingest(ctx, []api.Report{crossingReport(slug)}); err != nil {
		return 0, err
	}
	ectx, cancel := context.WithTimeout(ctx, enforceWait)
	defer cancel()
	t1, err := w.Disconnected(ectx, i, t0)
	if err != nil {
		return 0, fmt.Errorf("cutoff of %s: %w", slug, err)
	}
	return t1.Sub(t0), nil
}
