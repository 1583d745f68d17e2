package enforcement

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/bot-bottle/bottlecap/budget"
)

// emptyRoutes saves the original routes file of a sidecar, empties it in
// place and makes the sidecar reload it.
func (d *Docker) emptyRoutes(ctx context.Context, bottle string, m *cutoffMemo, info container.InspectResponse) error {
	path, ok := routesMount(info)
	if !ok {
		return nil
	}
	cur, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // nothing on the host to empty
	}
	if err != nil {
		return fmt.Errorf("read routes: %w", err)
	}
	r := m.routes(info.ID, path)
	if r == nil {
		m.Routes = append(m.Routes, savedRoutes{Container: info.ID, Path: path, Original: cur})
		if err := d.saveMemo(ctx, bottle, *m); err != nil {
			return err
		}
		r = &m.Routes[len(m.Routes)-1]
	}
	empty := EmptyRoutes(r.Original)
	changed := !bytes.Equal(cur, empty)
	if changed {
		if err := writeInPlace(path, empty); err != nil {
			return err
		}
	}
	if !changed && r.Hupped {
		return nil
	}
	if err := d.signal(ctx, info.ID, "HUP"); err != nil {
		return err
	}
	r.Hupped = true
	return d.saveMemo(ctx, bottle, *m)
}

// EmptyRoutes is the routes table a cut-off sidecar gets: no routes, but
// the same top-level `log:` setting (with its indented block, if any), so
// the sidecar keeps logging what it now refuses.
func EmptyRoutes(original []byte) []byte {
	var out bytes.Buffer
	inLog := false
	for _, line := range strings.SplitAfter(string(original), "\n") {
		top := line != "" && line[0] != ' ' && line[0] != '\t'
		switch {
		case top && strings.HasPrefix(line, "log:"):
			inLog = true
		case top:
			inLog = false
		}
		if inLog && strings.TrimSpace(line) != "" {
			out.WriteString(strings.TrimRight(line, "\n") + "\n")
		}
	}
	out.WriteString("routes: []\n")
	return out.Bytes()
}

// writeInPlace replaces a file's content without replacing the file: Docker
// binds a single file by inode, so a rename would leave the container
// reading the old one.
func writeInPlace(path string, content []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return fmt.Errorf("rewrite routes: %w", err)
	}
	_, err = f.Write(content)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("rewrite routes %s: %w", path, err)
	}
	return nil
}

// restore undoes a cutoff and a pause: it reconnects every endpoint the
// cutoff saved, puts every routes file back and signals its sidecar, then
// unpauses the bottle's paused containers, so that the agent resumes with
// its network already back. What was not done needs no undoing.
func (d *Docker) restore(ctx context.Context, a Action) error {
	if err := d.reconnect(ctx, a); err != nil {
		return err
	}
	return d.unpause(ctx, a)
}

// reconnect undoes a cutoff from its memo, then forgets the memo. Without
// a memo there is nothing to undo.
func (d *Docker) reconnect(ctx context.Context, a Action) error {
	m, found, err := d.loadMemo(ctx, a.Bottle)
	if err != nil || !found {
		return err
	}
	var errs []error
	for _, e := range m.Endpoints {
		errs = append(errs, d.reattach(ctx, e))
	}
	for _, r := range m.Routes {
		errs = append(errs, d.putBackRoutes(ctx, r))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := d.memo.DeleteMemo(ctx, a.Bottle, memoKey); err != nil {
		return fmt.Errorf("clear cutoff memo: %w", err)
	}
	return nil
}

// reattach reconnects one saved endpoint with its saved settings, unless
// the container is gone or already back on that network.
func (d *Docker) reattach(ctx context.Context, e savedEndpoint) error {
	info, ok, err := d.inspect(ctx, e.Container)
	if err != nil || !ok {
		return err
	}
	if info.NetworkSettings != nil {
		for name, ep := range info.NetworkSettings.Networks {
			if name == e.Network || (ep != nil && ep.NetworkID == e.NetworkID) {
				return nil
			}
		}
	}
	cfg := &network.EndpointSettings{Aliases: e.Aliases, Links: e.Links, IPAMConfig: e.IPAM, DriverOpts: e.DriverOpts}
	_, err = call(ctx, d.CallTimeout, "connect "+short(e.Container)+" to "+e.Network, func(ctx context.Context) (client.NetworkConnectResult, error) {
		return d.engine.NetworkConnect(ctx, e.NetworkID, client.NetworkConnectOptions{Container: e.Container, EndpointConfig: cfg})
	})
	return ignore(err, budget.ErrNotFound)
}

// putBackRoutes writes a saved routes file back in place and makes its
// sidecar reload it.
func (d *Docker) putBackRoutes(ctx context.Context, r savedRoutes) error {
	cur, err := os.ReadFile(r.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // the bottle's files are gone; nothing to put back into
	}
	if err != nil {
		return fmt.Errorf("read routes: %w", err)
	}
	if !bytes.Equal(cur, r.Original) {
		if err := writeInPlace(r.Path, r.Original); err != nil {
			return err
		}
	}
	return d.signal(ctx, r.Container, "HUP")
}
