package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	dclient "github.com/moby/moby/client"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/client"
	"github.com/bot-bottle/bottlecap/enforcement"
	"github.com/bot-bottle/bottlecap/enforcement/dockertest"
)

// enforceRealRuns is how many bottles are cut off on the real engine; the
// median is reported.
const enforceRealRuns = 7

// benchRealDisconnect times, on the real engine, each crossing from just
// before its report is sent to the moment the engine disconnected the
// bottle's container from its network (the time on the engine's event). Without an engine it says so and reports
// nothing.
func benchRealDisconnect(ctx context.Context, r *runner) error {
	cli, err := dockertest.Connect()
	if err != nil {
		r.logf("enforce_real_disconnect_ms: skipped, no docker engine answers: %v", err)
		return nil
	}
	w, err := newRealWorld(ctx, cli)
	if err != nil {
		return err
	}
	defer w.remove()
	d, err := startEnforceDaemon(ctx, cli)
	if err != nil {
		return err
	}
	defer d.stop()
	c := client.New(d.sock)
	defer c.Close()
	var lat []time.Duration
	for i := range enforceRealRuns {
		dt, err := w.cutOne(ctx, c, i)
		if err != nil {
			return err
		}
		lat = append(lat, dt)
	}
	slices.Sort(lat)
	r.report("enforce_real_disconnect_ms", round3(msOf(lat[len(lat)/2])), "ms")
	return nil
}

// realWorld is what the benchmark made on the engine, removed at the end.
type realWorld struct {
	cli    *dclient.Client
	id     string // random part of every name
	image  string
	net    string
	bottle []string // container ids, one per run
}

// newRealWorld builds the test image and one bottle container per run on a
// network that reaches outside.
func newRealWorld(ctx context.Context, cli *dclient.Client) (*realWorld, error) {
	w := &realWorld{cli: cli, id: dockertest.RandHex()}
	var err error
	if w.image, err = dockertest.BuildImage(ctx, cli); err != nil {
		return nil, fmt.Errorf("build image: %w", err)
	}
	w.net = "bcbench-" + w.id + "_egress"
	if _, err := cli.NetworkCreate(ctx, w.net, dclient.NetworkCreateOptions{Driver: "bridge"}); err != nil {
		w.remove()
		return nil, fmt.Errorf("create network: %w", err)
	}
	for i := range enforceRealRuns {
		if err := w.run(ctx, w.slug(i)); err != nil {
			w.remove()
			return nil, err
		}
	}
	return w, nil
}

func (w *realWorld) slug(i int) string { return fmt.Sprintf("bench-%s-%d", w.id, i) }

// run starts a bottle's container on the network and adds it to w.bottle.
func (w *realWorld) run(ctx context.Context, slug string) error {
	project := enforcement.ProjectPrefix + slug
	res, err := w.cli.ContainerCreate(ctx, dclient.ContainerCreateOptions{Name: project,
		Config:           &container.Config{Image: w.image, Cmd: []string{"sleep"}, Labels: map[string]string{enforcement.LabelProject: project}},
		HostConfig:       &container.HostConfig{NetworkMode: container.NetworkMode(w.net)},
		NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{w.net: {}}}})
	if err != nil {
		return fmt.Errorf("create %s: %w", project, err)
	}
	w.bottle = append(w.bottle, res.ID)
	if _, err := w.cli.ContainerStart(ctx, res.ID, dclient.ContainerStartOptions{}); err != nil {
		return fmt.Errorf("start %s: %w", project, err)
	}
	return nil
}

// cutOne registers run i's bottle, crosses its budget and waits for the
// engine to report its container disconnected.
func (w *realWorld) cutOne(ctx context.Context, c *client.Client, i int) (time.Duration, error) {
	slug := w.slug(i)
	if _, err := c.PutBottle(ctx, slug, api.BottleRequest{Budget: map[string]api.Amount{"claude": enforceBudget}}); err != nil {
		return 0, err
	}
	t0 := time.Now()
	if _, err := c.Ingest(ctx, []api.Report{crossingReport(slug)}); err != nil {
		return 0, err
	}
	// Events since t0, replayed by the engine, so none is missed; each
	// carries the engine's own time (same host clock) of the disconnect.
	ectx, cancel := context.WithTimeout(ctx, enforceWait)
	defer cancel()
	ev := w.cli.Events(ectx, dclient.EventsListOptions{Since: fmt.Sprintf("%d.%09d", t0.Unix(), t0.Nanosecond()),
		Filters: dclient.Filters{}.Add("type", "network").Add("event", "disconnect").Add("network", w.net)})
	for {
		select {
		case m := <-ev.Messages:
			if m.Actor.Attributes["container"] == w.bottle[i] {
				return time.Unix(0, m.TimeNano).Sub(t0), nil
			}
		case err := <-ev.Err:
			return 0, fmt.Errorf("cutoff of %s: no disconnect seen: %w", slug, err)
		}
	}
}

// remove deletes the containers, the network and the image.
func (w *realWorld) remove() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, id := range w.bottle {
		w.cli.ContainerRemove(ctx, id, dclient.ContainerRemoveOptions{Force: true})
	}
	if w.net != "" {
		w.cli.NetworkRemove(ctx, w.net, dclient.NetworkRemoveOptions{})
	}
	if w.image != "" {
		dockertest.RemoveImage(ctx, w.cli, w.image)
	}
}
