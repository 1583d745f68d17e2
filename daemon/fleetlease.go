package daemon

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/controller"
	"github.com/bot-bottle/bottlecap/fleet"
)

// The fleet budget in a running daemon (SPEC section 14): the lease
// keeper over the controller's core, and a feed that hands the core each
// new view of the fleet the membership reads, tells it whether Postgres
// answers, and keeps the leases of every host for the status.

// The core is what the keeper holds leases for.
var _ fleet.LeaseHolder = (*controller.Core)(nil)

// feedEvery is how often the feed looks for a new view: twice per
// refresh of the membership. staleAfter is how long without a view
// before Postgres counts as unreachable (which, with fleet.fail_open,
// lets the local scopes alone decide).
const (
	feedEvery  = fleet.DefaultRefresh / 2
	staleAfter = 3 * fleet.DefaultRefresh
)

// fleetLeases is the daemon's side of the fleet budget.
type fleetLeases struct {
	keeper *fleet.Keeper
	leases atomic.Pointer[[]fleet.LeaseRow]
	reach  atomic.Pointer[reach]
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// reach is whether Postgres answered the feed's last look, and why not.
type reach struct {
	ok  bool
	err string
}

// prepareLeases makes the controller's config show the fleet (before
// the controller is built); startLeases runs the keeper and the feed once
// it is.
func (d *Daemon) prepareLeases(cc *controller.Config) {
	if d.fleet == nil {
		return
	}
	d.leases = &fleetLeases{}
	d.leases.reach.Store(&reach{ok: true})
	cc.Fleet = d.fleetStatus
}

// startLeases builds the keeper over the controller's core (which it
// needs built) and runs it with the feed until stopLeases.
func (d *Daemon) startLeases(cfg Config) {
	if d.leases == nil {
		return
	}
	core, m := d.Server.Core(), d.fleet.m
	k := fleet.NewKeeper(fleet.KeeperConfig{Host: m.Host(), Fleet: m.Settings, Leaser: m.Leaser, Holder: core, Log: cfg.Log, TTL: cfg.FleetLeaseTTL})
	core.SetFleetKeeper(k)
	ctx, cancel := context.WithCancel(context.Background())
	d.leases.keeper, d.leases.cancel = k, cancel
	d.leases.wg.Go(func() { k.Run(ctx) })
	d.leases.wg.Go(func() { d.feed(ctx, core, m) })
}

// stopLeases stops the feed and the keeper, which returns what its
// leases have left: after the API stopped, before the membership does.
func (d *Daemon) stopLeases() {
	if d.leases == nil || d.leases.cancel == nil {
		return
	}
	d.leases.cancel()
	d.leases.wg.Wait()
}

// feed hands the core every new view of the fleet, and says Postgres is
// unreachable when no view came for staleAfter.
func (d *Daemon) feed(ctx context.Context, core *controller.Core, m *fleet.Member) {
	tick := time.NewTicker(feedEvery)
	defer tick.Stop()
	var last time.Time
	started := time.Now()
	for {
		v := m.View()
		silent := time.Since(later(last, started))
		switch {
		case !v.Refreshed.IsZero() && !v.Refreshed.Equal(last):
			last = v.Refreshed
			core.SetFleetKnown(ctx, fleet.KnownFrom(v, m.Host(), m.Settings()))
			core.SetFleetReachable(ctx, true)
			d.leases.reach.Store(&reach{ok: true})
			d.readLeases(ctx, m)
		case silent > staleAfter:
			core.SetFleetReachable(ctx, false)
			d.leases.reach.Store(&reach{err: fmt.Sprintf("no read of the fleet's Postgres for %s", silent.Round(time.Second))})
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// readLeases keeps every host's leases for the status. A failed read
// keeps the last one: the view just read says Postgres answers.
func (d *Daemon) readLeases(ctx context.Context, m *fleet.Member) {
	ctx, cancel := context.WithTimeout(ctx, staleAfter)
	defer cancel()
	if rows, err := m.ReadLeases(ctx); err == nil {
		d.leases.leases.Store(&rows)
	}
}

// fleetStatus is the fleet for /v1/status and /metrics: every host with
// its shipped usage, what its leases reserve and its shipping lag (this
// host's own lag as of now).
func (d *Daemon) fleetStatus(context.Context) api.FleetStatus {
	m := d.fleet.m
	v, f, r := m.View(), m.Settings(), d.leases.reach.Load()
	st := api.FleetStatus{Host: m.Host(), Reachable: r.ok, Error: r.err, FailOpen: f.FailOpen, ReadAt: v.Refreshed, Hosts: []api.FleetHost{}}
	var leases []fleet.LeaseRow
	if p := d.leases.leases.Load(); p != nil {
		leases = *p
	}
	for _, h := range v.Hosts {
		fh := api.FleetHost{Host: h.Host, Used: h.Lifetime, Lease: map[string]int64{}, LagMS: h.Lag.Milliseconds(), LastSeen: h.LastSeen}
		if h.Host == m.Host() {
			fh.LagMS = m.Shipping().Lag.Milliseconds()
		}
		for _, l := range leases {
			if l.Host == h.Host {
				fh.Lease[l.Provider] = l.Reserved
				if l.Expired && l.Reserved > 0 {
					fh.Expired = append(fh.Expired, l.Provider)
				}
			}
		}
		st.Hosts = append(st.Hosts, fh)
	}
	return st
}

// later is the later of two times.
func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
