package enforcement_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/bot-bottle/bottlecap/enforcement"
)

// fakeEngine is an Engine whose every call is a function field; a nil field
// fails the test's call with an unclassified error.
type fakeEngine struct {
	PingFn              func(context.Context, client.PingOptions) (client.PingResult, error)
	ContainerListFn     func(context.Context, client.ContainerListOptions) (client.ContainerListResult, error)
	ContainerInspectFn  func(context.Context, string, client.ContainerInspectOptions) (client.ContainerInspectResult, error)
	ContainerKillFn     func(context.Context, string, client.ContainerKillOptions) (client.ContainerKillResult, error)
	ContainerCommitFn   func(context.Context, string, client.ContainerCommitOptions) (client.ContainerCommitResult, error)
	ContainerStopFn     func(context.Context, string, client.ContainerStopOptions) (client.ContainerStopResult, error)
	ContainerRemoveFn   func(context.Context, string, client.ContainerRemoveOptions) (client.ContainerRemoveResult, error)
	ContainerPauseFn    func(context.Context, string, client.ContainerPauseOptions) (client.ContainerPauseResult, error)
	ContainerUnpauseFn  func(context.Context, string, client.ContainerUnpauseOptions) (client.ContainerUnpauseResult, error)
	ImageInspectFn      func(context.Context, string, ...client.ImageInspectOption) (client.ImageInspectResult, error)
	NetworkInspectFn    func(context.Context, string, client.NetworkInspectOptions) (client.NetworkInspectResult, error)
	NetworkConnectFn    func(context.Context, string, client.NetworkConnectOptions) (client.NetworkConnectResult, error)
	NetworkDisconnectFn func(context.Context, string, client.NetworkDisconnectOptions) (client.NetworkDisconnectResult, error)
	NetworkListFn       func(context.Context, client.NetworkListOptions) (client.NetworkListResult, error)
	NetworkRemoveFn     func(context.Context, string, client.NetworkRemoveOptions) (client.NetworkRemoveResult, error)
	EventsFn            func(context.Context, client.EventsListOptions) client.EventsResult
}

var _ enforcement.Engine = (*fakeEngine)(nil)

var errNoFake = fmt.Errorf("fake engine: call not set up")

func (f *fakeEngine) Ping(ctx context.Context, o client.PingOptions) (client.PingResult, error) {
	if f.PingFn == nil {
		return client.PingResult{}, errNoFake
	}
	return f.PingFn(ctx, o)
}

func (f *fakeEngine) ContainerList(ctx context.Context, o client.ContainerListOptions) (client.ContainerListResult, error) {
	if f.ContainerListFn == nil {
		return client.ContainerListResult{}, errNoFake
	}
	return f.ContainerListFn(ctx, o)
}

func (f *fakeEngine) ContainerInspect(ctx context.Context, id string, o client.ContainerInspectOptions) (client.ContainerInspectResult, error) {
	if f.ContainerInspectFn == nil {
		return client.ContainerInspectResult{}, errNoFake
	}
	return f.ContainerInspectFn(ctx, id, o)
}

func (f *fakeEngine) ContainerKill(ctx context.Context, id string, o client.ContainerKillOptions) (client.ContainerKillResult, error) {
	if f.ContainerKillFn == nil {
		return client.ContainerKillResult{}, errNoFake
	}
	return f.ContainerKillFn(ctx, id, o)
}

func (f *fakeEngine) ContainerCommit(ctx context.Context, id string, o client.ContainerCommitOptions) (client.ContainerCommitResult, error) {
	if f.ContainerCommitFn == nil {
		return client.ContainerCommitResult{}, errNoFake
	}
	return f.ContainerCommitFn(ctx, id, o)
}

func (f *fakeEngine) ContainerStop(ctx context.Context, id string, o client.ContainerStopOptions) (client.ContainerStopResult, error) {
	if f.ContainerStopFn == nil {
		return client.ContainerStopResult{}, errNoFake
	}
	return f.ContainerStopFn(ctx, id, o)
}

func (f *fakeEngine) ContainerRemove(ctx context.Context, id string, o client.ContainerRemoveOptions) (client.ContainerRemoveResult, error) {
	if f.ContainerRemoveFn == nil {
		return client.ContainerRemoveResult{}, errNoFake
	}
	return f.ContainerRemoveFn(ctx, id, o)
}

func (f *fakeEngine) ContainerPause(ctx context.Context, id string, o client.ContainerPauseOptions) (client.ContainerPauseResult, error) {
	if f.ContainerPauseFn == nil {
		return client.ContainerPauseResult{}, errNoFake
	}
	return f.ContainerPauseFn(ctx, id, o)
}

func (f *fakeEngine) ContainerUnpause(ctx context.Context, id string, o client.ContainerUnpauseOptions) (client.ContainerUnpauseResult, error) {
	if f.ContainerUnpauseFn == nil {
		return client.ContainerUnpauseResult{}, errNoFake
	}
	return f.ContainerUnpauseFn(ctx, id, o)
}

func (f *fakeEngine) ImageInspect(ctx context.Context, id string, o ...client.ImageInspectOption) (client.ImageInspectResult, error) {
	if f.ImageInspectFn == nil {
		return client.ImageInspectResult{}, errNoFake
	}
	return f.ImageInspectFn(ctx, id, o...)
}

func (f *fakeEngine) NetworkInspect(ctx context.Context, id string, o client.NetworkInspectOptions) (client.NetworkInspectResult, error) {
	if f.NetworkInspectFn == nil {
		return client.NetworkInspectResult{}, errNoFake
	}
	return f.NetworkInspectFn(ctx, id, o)
}

func (f *fakeEngine) NetworkConnect(ctx context.Context, id string, o client.NetworkConnectOptions) (client.NetworkConnectResult, error) {
	if f.NetworkConnectFn == nil {
		return client.NetworkConnectResult{}, errNoFake
	}
	return f.NetworkConnectFn(ctx, id, o)
}

func (f *fakeEngine) NetworkDisconnect(ctx context.Context, id string, o client.NetworkDisconnectOptions) (client.NetworkDisconnectResult, error) {
	if f.NetworkDisconnectFn == nil {
		return client.NetworkDisconnectResult{}, errNoFake
	}
	return f.NetworkDisconnectFn(ctx, id, o)
}

func (f *fakeEngine) NetworkList(ctx context.Context, o client.NetworkListOptions) (client.NetworkListResult, error) {
	if f.NetworkListFn == nil {
		return client.NetworkListResult{}, errNoFake
	}
	return f.NetworkListFn(ctx, o)
}

func (f *fakeEngine) NetworkRemove(ctx context.Context, id string, o client.NetworkRemoveOptions) (client.NetworkRemoveResult, error) {
	if f.NetworkRemoveFn == nil {
		return client.NetworkRemoveResult{}, errNoFake
	}
	return f.NetworkRemoveFn(ctx, id, o)
}

func (f *fakeEngine) Events(ctx context.Context, o client.EventsListOptions) client.EventsResult {
	if f.EventsFn == nil {
		errs := make(chan error, 1)
		errs <- errNoFake
		return client.EventsResult{Err: errs}
	}
	return f.EventsFn(ctx, o)
}

// world is a small stateful engine behind a fakeEngine: containers and
// networks that the fake's calls really change, and a log of the calls
// that change something, so tests can assert what an action did.
type world struct {
	mu       sync.Mutex
	ctrs     []*fctr
	nets     map[string]network.Inspect // by id
	images   map[string]bool
	mutating []string
}

type fctr struct {
	id, name string
	labels   map[string]string
	created  int64
	running  bool
	paused   bool
	nets     map[string]*network.EndpointSettings // by network name
	mounts   []container.MountPoint
}

func notFound(what string) error { return fmt.Errorf("no such %s: %w", what, cerrdefs.ErrNotFound) }

func (w *world) ctr(idOrName string) *fctr {
	for _, c := range w.ctrs {
		if c.id == idOrName || c.name == idOrName {
			return c
		}
	}
	return nil
}

func (w *world) log(format string, args ...any) {
	w.mutating = append(w.mutating, fmt.Sprintf(format, args...))
}

// calls returns the mutating calls made so far.
func (w *world) calls() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.mutating)
}

func (c *fctr) inspect() container.InspectResponse {
	nets := map[string]*network.EndpointSettings{}
	for k, v := range c.nets {
		nets[k] = v.Copy()
	}
	return container.InspectResponse{
		ID: c.id, Name: "/" + c.name,
		Config:          &container.Config{Labels: maps.Clone(c.labels)},
		State:           &container.State{Running: c.running, Paused: c.paused, Status: c.state()},
		Mounts:          slices.Clone(c.mounts),
		NetworkSettings: &container.NetworkSettings{Networks: nets},
	}
}

// state is the container's state as the engine lists it.
func (c *fctr) state() container.ContainerState {
	switch {
	case c.paused:
		return container.StatePaused
	case c.running:
		return container.StateRunning
	}
	return container.StateExited
}
