package enforcement

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/bot-bottle/bottlecap/budget"
)

// memoKey is where a bottle's cutoff record lives in the Memo.
const memoKey = "cutoff"

// cutoffMemo is everything restore needs to undo a cutoff.
type cutoffMemo struct {
	Endpoints []savedEndpoint `json:"endpoints,omitempty"`
	Routes    []savedRoutes   `json:"routes,omitempty"`
}

// savedEndpoint is one network connection a cutoff removed, with the
// settings the operator gave it (aliases, links, static addresses).
type savedEndpoint struct {
	Container  string                      `json:"container"`
	Network    string                      `json:"network"`
	NetworkID  string                      `json:"network_id"`
	Aliases    []string                    `json:"aliases,omitempty"`
	Links      []string                    `json:"links,omitempty"`
	IPAM       *network.EndpointIPAMConfig `json:"ipam,omitempty"`
	DriverOpts map[string]string           `json:"driver_opts,omitempty"`
}

// savedRoutes is the original content of a routes file a cutoff emptied.
type savedRoutes struct {
	Container string `json:"container"`
	Path      string `json:"path"`
	Original  []byte `json:"original"`
	// Hupped records that the sidecar was told to reload the empty table,
	// so a retried cutoff signals it exactly when it has not been.
	Hupped bool `json:"hupped,omitempty"`
}

func (m *cutoffMemo) endpoint(ctr, netID string) bool {
	return slices.ContainsFunc(m.Endpoints, func(e savedEndpoint) bool { return e.Container == ctr && e.NetworkID == netID })
}

func (m *cutoffMemo) routes(ctr, path string) *savedRoutes {
	for i := range m.Routes {
		if m.Routes[i].Container == ctr && m.Routes[i].Path == path {
			return &m.Routes[i]
		}
	}
	return nil
}

// loadMemo returns the bottle's cutoff record; found is false when none.
func (d *Docker) loadMemo(ctx context.Context, bottle string) (m cutoffMemo, found bool, err error) {
	b, err := d.memo.Memo(ctx, bottle, memoKey)
	if errors.Is(err, budget.ErrNotFound) {
		return cutoffMemo{}, false, nil
	}
	if err != nil {
		return cutoffMemo{}, false, fmt.Errorf("read cutoff memo: %w", err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return cutoffMemo{}, false, fmt.Errorf("%w: cutoff memo: %v", budget.ErrInvalid, err)
	}
	return m, true, nil
}

func (d *Docker) saveMemo(ctx context.Context, bottle string, m cutoffMemo) error {
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode cutoff memo: %w", err)
	}
	if err := d.memo.PutMemo(ctx, bottle, memoKey, b); err != nil {
		return fmt.Errorf("save cutoff memo: %w", err)
	}
	return nil
}

// cutoff takes every container of the bottle off its non-internal networks
// and empties the sidecar's routes table. Each change is recorded in the
// memo before it is made, so a crash in between never loses what restore
// needs.
func (d *Docker) cutoff(ctx context.Context, a Action) error {
	ctrs, err := d.containers(ctx, a)
	if err != nil {
		return err
	}
	m, _, err := d.loadMemo(ctx, a.Bottle)
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range ctrs {
		info, ok, err := d.inspect(ctx, c.ID)
		if err != nil || !ok {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, d.isolate(ctx, a.Bottle, &m, info))
		errs = append(errs, d.emptyRoutes(ctx, a.Bottle, &m, info))
	}
	return errors.Join(errs...)
}

// isolate disconnects one container from each network that is not internal.
func (d *Docker) isolate(ctx context.Context, bottle string, m *cutoffMemo, info container.InspectResponse) error {
	if info.NetworkSettings == nil {
		return nil
	}
	names := make([]string, 0, len(info.NetworkSettings.Networks))
	for name := range info.NetworkSettings.Networks {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		ep := info.NetworkSettings.Networks[name]
		if err := d.detach(ctx, bottle, m, info.ID, name, ep); err != nil {
			return err
		}
	}
	return nil
}

// detach saves one endpoint and disconnects it, unless its network is
// internal (internal networks reach nothing outside the bottle).
func (d *Docker) detach(ctx context.Context, bottle string, m *cutoffMemo, ctr, name string, ep *network.EndpointSettings) error {
	if name == "none" || ep == nil {
		return nil
	}
	if name == "host" {
		return fmt.Errorf("%w: container %s uses the host network and cannot be cut off", budget.ErrConflict, short(ctr))
	}
	netID := ep.NetworkID
	if netID == "" {
		netID = name
	}
	res, err := call(ctx, d.CallTimeout, "inspect network "+name, func(ctx context.Context) (client.NetworkInspectResult, error) {
		return d.engine.NetworkInspect(ctx, netID, client.NetworkInspectOptions{})
	})
	if err != nil || res.Network.Internal {
		return ignore(err, budget.ErrNotFound)
	}
	if !m.endpoint(ctr, netID) {
		m.Endpoints = append(m.Endpoints, savedEndpoint{
			Container: ctr, Network: name, NetworkID: netID,
			Aliases: ep.Aliases, Links: ep.Links, IPAM: ep.IPAMConfig, DriverOpts: ep.DriverOpts,
		})
		if err := d.saveMemo(ctx, bottle, *m); err != nil {
			return err
		}
	}
	_, err = call(ctx, d.CallTimeout, "disconnect "+short(ctr)+" from "+name, func(ctx context.Context) (client.NetworkDisconnectResult, error) {
		return d.engine.NetworkDisconnect(ctx, netID, client.NetworkDisconnectOptions{Container: ctr})
	})
	return ignore(err, budget.ErrNotFound)
}

// routesMount is the host file bound at RoutesPath in the container, if any.
func routesMount(info container.InspectResponse) (string, bool) {
	for _, mp := range info.Mounts {
		if mp.Destination == RoutesPath && mp.Type == mount.TypeBind && mp.Source != "" {
			return mp.Source, true
		}
	}
	return "", false
}
