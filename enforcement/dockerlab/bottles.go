package dockerlab

import (
	"context"
	"fmt"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/bot-bottle/bottlecap/enforcement"
)

// Bottles is n running bottle containers, each labelled as bot-bottle
// labels a bottle's project, on a bridge network of their own: what the
// benchmark cuts off on the real engine. All of it is scoped to a daemon
// id of its own (DaemonID), so that only the benchmark's daemon takes it,
// never a user's daemon on the same engine. Remove deletes all of it.
type Bottles struct {
	cli   *client.Client
	id    string // random part of every name
	image string
	net   string
	ids   []string // container ids, one per bottle
}

// NewBottles builds the test image and starts n bottle containers on a new
// network. Whatever was made is removed when it fails.
func NewBottles(ctx context.Context, cli *client.Client, n int) (*Bottles, error) {
	b := &Bottles{cli: cli, id: RandHex()}
	var err error
	if b.image, err = BuildImage(ctx, cli); err != nil {
		return nil, fmt.Errorf("build image: %w", err)
	}
	b.net = "bcbench-" + b.id + "_egress"
	if _, err := cli.NetworkCreate(ctx, b.net, client.NetworkCreateOptions{Driver: "bridge",
		Labels: map[string]string{enforcement.LabelDaemon: b.DaemonID()}}); err != nil {
		b.Remove()
		return nil, fmt.Errorf("create network: %w", err)
	}
	for i := range n {
		if err := b.run(ctx, b.Slug(i)); err != nil {
			b.Remove()
			return nil, err
		}
	}
	return b, nil
}

// DaemonID is the daemon id the bottles are labelled with: the daemon that
// acts on them must run with it.
func (b *Bottles) DaemonID() string { return "bench-" + b.id }

// Slug is bottle i's slug.
func (b *Bottles) Slug(i int) string { return fmt.Sprintf("bench-%s-%d", b.id, i) }

// run starts a bottle's container on the network.
func (b *Bottles) run(ctx context.Context, slug string) error {
	project := enforcement.ProjectPrefix + slug
	res, err := b.cli.ContainerCreate(ctx, client.ContainerCreateOptions{Name: project,
		Config:           &container.Config{Image: b.image, Cmd: []string{"sleep"}, Labels: map[string]string{enforcement.LabelProject: project, enforcement.LabelDaemon: b.DaemonID()}},
		HostConfig:       &container.HostConfig{NetworkMode: container.NetworkMode(b.net)},
		NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{b.net: {}}}})
	if err != nil {
		return fmt.Errorf("create %s: %w", project, err)
	}
	b.ids = append(b.ids, res.ID)
	if _, err := b.cli.ContainerStart(ctx, res.ID, client.ContainerStartOptions{}); err != nil {
		return fmt.Errorf("start %s: %w", project, err)
	}
	return nil
}

// Disconnected waits for the engine to disconnect bottle i's container
// from its network and returns the engine's own time of that event (the
// same host clock). The engine replays events since since, so none is
// missed.
func (b *Bottles) Disconnected(ctx context.Context, i int, since time.Time) (time.Time, error) {
	ev := b.cli.Events(ctx, client.EventsListOptions{Since: fmt.Sprintf("%d.%09d", since.Unix(), since.Nanosecond()),
		Filters: client.Filters{}.Add("type", "network").Add("event", "disconnect").Add("network", b.net)})
	for {
		select {
		case m := <-ev.Messages:
			if m.Actor.Attributes["container"] == b.ids[i] {
				return time.Unix(0, m.TimeNano), nil
			}
		case err := <-ev.Err:
			return time.Time{}, fmt.Errorf("no disconnect of %s seen: %w", b.Slug(i), err)
		}
	}
}

// Remove deletes the containers, the network and the image.
func (b *Bottles) Remove() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, id := range b.ids {
		b.cli.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true})
	}
	if b.net != "" {
		b.cli.NetworkRemove(ctx, b.net, client.NetworkRemoveOptions{})
	}
	if b.image != "" {
		RemoveImage(ctx, b.cli, b.image)
	}
}

// FirstCallEngine is a fake engine for timing cutoffs: a cutoff's first
// call lists the containers, which it answers with none, so that is the
// only call it gets; it sends the time of each on Calls without waiting
// (a second call for the same cutoff is dropped). Any other call panics on
// the nil Engine: a benchmark would be measuring something else.
type FirstCallEngine struct {
	enforcement.Engine
	Calls chan time.Time
}

// NewFirstCallEngine returns an engine whose Calls holds one time.
func NewFirstCallEngine() *FirstCallEngine {
	return &FirstCallEngine{Calls: make(chan time.Time, 1)}
}

// ContainerList implements enforcement.Engine.
func (f *FirstCallEngine) ContainerList(context.Context, client.ContainerListOptions) (client.ContainerListResult, error) {
	select {
	case f.Calls <- time.Now():
	default:
	}
	return client.ContainerListResult{}, nil
}
