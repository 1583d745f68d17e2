package enforcement_test

import (
	"context"
	"fmt"
	"slices"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// engine returns a fakeEngine whose calls act on w.
func (w *world) engine() *fakeEngine {
	f := &fakeEngine{}
	f.ContainerListFn = func(context.Context, client.ContainerListOptions) (client.ContainerListResult, error) {
		w.mu.Lock()
		defer w.mu.Unlock()
		var out client.ContainerListResult
		for i := len(w.ctrs) - 1; i >= 0; i-- { // newest first, like the engine
			c := w.ctrs[i]
			out.Items = append(out.Items, container.Summary{ID: c.id, Names: []string{"/" + c.name}, Labels: c.labels, Created: c.created, State: c.state()})
		}
		return out, nil
	}
	f.ContainerInspectFn = func(_ context.Context, id string, _ client.ContainerInspectOptions) (client.ContainerInspectResult, error) {
		w.mu.Lock()
		defer w.mu.Unlock()
		if c := w.ctr(id); c != nil {
			return client.ContainerInspectResult{Container: c.inspect()}, nil
		}
		return client.ContainerInspectResult{}, notFound("container " + id)
	}
	f.NetworkInspectFn = func(_ context.Context, id string, _ client.NetworkInspectOptions) (client.NetworkInspectResult, error) {
		w.mu.Lock()
		defer w.mu.Unlock()
		if n, ok := w.nets[id]; ok {
			return client.NetworkInspectResult{Network: n}, nil
		}
		return client.NetworkInspectResult{}, notFound("network " + id)
	}
	w.networkCalls(f)
	w.containerCalls(f)
	w.pauseCalls(f)
	return f
}

func (w *world) networkCalls(f *fakeEngine) {
	f.NetworkDisconnectFn = func(_ context.Context, id string, o client.NetworkDisconnectOptions) (client.NetworkDisconnectResult, error) {
		w.mu.Lock()
		defer w.mu.Unlock()
		c, n := w.ctr(o.Container), w.nets[id]
		if c == nil || c.nets[n.Name] == nil {
			return client.NetworkDisconnectResult{}, notFound("endpoint")
		}
		delete(c.nets, n.Name)
		w.log("disconnect %s %s", c.name, n.Name)
		return client.NetworkDisconnectResult{}, nil
	}
	f.NetworkConnectFn = func(_ context.Context, id string, o client.NetworkConnectOptions) (client.NetworkConnectResult, error) {
		w.mu.Lock()
		defer w.mu.Unlock()
		c, n := w.ctr(o.Container), w.nets[id]
		if c == nil || n.ID == "" {
			return client.NetworkConnectResult{}, notFound("container or network")
		}
		if c.nets[n.Name] != nil {
			return client.NetworkConnectResult{}, fmt.Errorf("already connected: %w", cerrdefs.ErrPermissionDenied)
		}
		ep := o.EndpointConfig.Copy()
		ep.NetworkID = n.ID
		c.nets[n.Name] = ep
		w.log("connect %s %s %v", c.name, n.Name, ep.Aliases)
		return client.NetworkConnectResult{}, nil
	}
	f.NetworkListFn = func(context.Context, client.NetworkListOptions) (client.NetworkListResult, error) {
		w.mu.Lock()
		defer w.mu.Unlock()
		var out client.NetworkListResult
		for _, n := range w.nets {
			out.Items = append(out.Items, network.Summary{Network: n.Network})
		}
		return out, nil
	}
	f.NetworkRemoveFn = func(_ context.Context, id string, _ client.NetworkRemoveOptions) (client.NetworkRemoveResult, error) {
		w.mu.Lock()
		defer w.mu.Unlock()
		n, ok := w.nets[id]
		if !ok {
			return client.NetworkRemoveResult{}, notFound("network")
		}
		delete(w.nets, id)
		w.log("rmnet %s", n.Name)
		return client.NetworkRemoveResult{}, nil
	}
}

func (w *world) containerCalls(f *fakeEngine) {
	f.ContainerKillFn = func(_ context.Context, id string, o client.ContainerKillOptions) (client.ContainerKillResult, error) {
		w.mu.Lock()
		defer w.mu.Unlock()
		c := w.ctr(id)
		if c == nil {
			return client.ContainerKillResult{}, notFound("container")
		}
		if !c.running {
			return client.ContainerKillResult{}, fmt.Errorf("not running: %w", cerrdefs.ErrConflict)
		}
		w.log("kill %s %s", c.name, o.Signal)
		return client.ContainerKillResult{}, nil
	}
	f.ContainerStopFn = func(_ context.Context, id string, _ client.ContainerStopOptions) (client.ContainerStopResult, error) {
		w.mu.Lock()
		defer w.mu.Unlock()
		c := w.ctr(id)
		if c == nil {
			return client.ContainerStopResult{}, notFound("container")
		}
		if c.running { // the engine answers 304, which the client does not report
			c.running, c.paused = false, false
			w.log("stop %s", c.name)
		}
		return client.ContainerStopResult{}, nil
	}
	f.ContainerRemoveFn = func(_ context.Context, id string, _ client.ContainerRemoveOptions) (client.ContainerRemoveResult, error) {
		w.mu.Lock()
		defer w.mu.Unlock()
		i := slices.IndexFunc(w.ctrs, func(c *fctr) bool { return c.id == id })
		if i < 0 {
			return client.ContainerRemoveResult{}, notFound("container")
		}
		w.log("rm %s", w.ctrs[i].name)
		w.ctrs = slices.Delete(w.ctrs, i, i+1)
		return client.ContainerRemoveResult{}, nil
	}
	f.ContainerCommitFn = func(_ context.Context, id string, o client.ContainerCommitOptions) (client.ContainerCommitResult, error) {
		w.mu.Lock()
		defer w.mu.Unlock()
		c := w.ctr(id)
		if c == nil {
			return client.ContainerCommitResult{}, notFound("container")
		}
		w.images[o.Reference] = true
		w.log("commit %s %s", c.name, o.Reference)
		return client.ContainerCommitResult{ID: "sha256:x"}, nil
	}
	f.ImageInspectFn = func(_ context.Context, ref string, _ ...client.ImageInspectOption) (client.ImageInspectResult, error) {
		w.mu.Lock()
		defer w.mu.Unlock()
		if !w.images[ref] {
			return client.ImageInspectResult{}, notFound("image")
		}
		return client.ImageInspectResult{}, nil
	}
}

// pauseCalls make the fake's pause and unpause act on w as Docker 20.10
// does: pausing a paused or stopped container is a conflict, unpausing one
// that is not paused an error of no class.
func (w *world) pauseCalls(f *fakeEngine) {
	f.ContainerPauseFn = func(_ context.Context, id string, _ client.ContainerPauseOptions) (client.ContainerPauseResult, error) {
		w.mu.Lock()
		defer w.mu.Unlock()
		c := w.ctr(id)
		switch {
		case c == nil:
			return client.ContainerPauseResult{}, notFound("container")
		case c.paused:
			return client.ContainerPauseResult{}, fmt.Errorf("is already paused: %w", cerrdefs.ErrConflict)
		case !c.running:
			return client.ContainerPauseResult{}, fmt.Errorf("is not running: %w", cerrdefs.ErrConflict)
		}
		c.paused = true
		w.log("pause %s", c.name)
		return client.ContainerPauseResult{}, nil
	}
	f.ContainerUnpauseFn = func(_ context.Context, id string, _ client.ContainerUnpauseOptions) (client.ContainerUnpauseResult, error) {
		w.mu.Lock()
		defer w.mu.Unlock()
		c := w.ctr(id)
		switch {
		case c == nil:
			return client.ContainerUnpauseResult{}, notFound("container")
		case !c.paused:
			return client.ContainerUnpauseResult{}, fmt.Errorf("container %s is not paused", id)
		}
		c.paused = false
		w.log("unpause %s", c.name)
		return client.ContainerUnpauseResult{}, nil
	}
}
