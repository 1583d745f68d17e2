package controller

import (
	"context"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
)

// The fleet scope in the core (SPEC section 14). The book weighs the
// fleet in every verdict and grant (budget/fleetscope.go); the core keeps
// this host's leases live only until their local deadlines, takes what the
// daemon reads of Postgres, acts when a read shows the fleet exhausted (or
// a new period), and lets an ask that only a new lease could satisfy wait
// briefly for the lease keeper.

// FleetKeeper is the daemon's lease keeper as the core sees it: told,
// without waiting, that admission wants n more tokens of a provider's
// fleet budget than this host's lease leaves. After each attempt the
// keeper calls SetFleetLease or SetFleetReachable, which wakes the asks
// waiting for it.
type FleetKeeper interface {
	Want(provider string, n int64)
}

// leaseWait bounds how long an ask waits for the keeper to bring a lease:
// a round trip to Postgres, with room for a slow one. An ask still short
// after it is answered with what there is.
const leaseWait = 2 * time.Second

// fleetLeases is the core's side of the leases, guarded by Core.mu.
type fleetLeases struct {
	keeper FleetKeeper
	// deadlines are the local deadlines of the live leases, on the
	// core's clock; next is the soonest (zero: none), so that the sweep
	// before each answer costs one comparison.
	deadlines map[string]time.Time
	next      time.Time
	// changed is closed, and replaced, after every lease the keeper sets
	// and every change of reachability: waiting asks look again.
	changed chan struct{}
}

func newFleetLeases() fleetLeases {
	return fleetLeases{deadlines: map[string]time.Time{}, changed: make(chan struct{})}
}

// bookSettings are the settings the book is given: a daemon that is no
// fleet member (it started without fleet:, or a reload only now added
// one, which applies at the next start) leaves the fleet budget out, so
// that no lease, which no keeper would ever bring, is waited for.
func (c *Core) bookSettings(st *budget.Settings) *budget.Settings {
	if c.fleetOn || st.Fleet == nil {
		return st
	}
	alone := *st
	alone.Fleet = nil
	return &alone
}

// SetFleetKeeper gives the core the lease keeper to tell when an ask is
// short of lease (the daemon builds the keeper over the core).
func (c *Core) SetFleetKeeper(k FleetKeeper) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fleet.keeper = k
}

// SetFleetLease puts this host's lease of a provider in force: its
// lifetime usage may reach ceiling until deadline, on the core's clock.
// The keeper sets the deadline to when it sent the request plus the
// lease's time to live, less a margin, so that this host stops spending
// before Postgres could hold the lease expired. A zero deadline is no
// lease (one returned, or none granted).
func (c *Core) SetFleetLease(provider string, ceiling int64, deadline time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	live := !deadline.IsZero() && c.now().Before(deadline)
	c.book.SetFleetLease(provider, budget.FleetLease{Ceiling: ceiling, Live: live})
	if live {
		c.fleet.deadlines[provider] = deadline
	} else {
		delete(c.fleet.deadlines, provider)
	}
	c.fleetNextLocked()
	c.fleetChangedLocked()
}

// FleetLimits are the fleet limits in force (nil for a host alone).
func (c *Core) FleetLimits() budget.Limits {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.book.FleetLimits()
}

// FleetSpent is this host's lifetime usage of a provider and what its
// allowances hold: what a lease's ceiling is measured against.
func (c *Core) FleetSpent(provider string) (used, held int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fleetSpentLocked(provider)
}

// fleetSpentLocked is FleetSpent with the lock held, after the sweep, so
// that what expired no longer counts as held.
func (c *Core) fleetSpentLocked(provider string) (used, held int64) {
	c.sweepLocked(c.now())
	_, _, used = c.book.Used("", "", provider)
	_, _, held = c.book.Held("", "", provider)
	return used, held
}

// CloseFleetLease ends this host's lease of a provider at once and
// returns what the host has spent and holds of it: the keeper returns
// the lease down to that, and nothing is granted meanwhile from what
// Postgres is about to free.
func (c *Core) CloseFleetLease(provider string) (base int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	used, held := c.fleetSpentLocked(provider)
	c.book.SetFleetLease(provider, budget.FleetLease{})
	delete(c.fleet.deadlines, provider)
	c.fleetNextLocked()
	return budget.SatAdd(used, held)
}

// FleetLease is this host's lease of a provider as the core holds it.
func (c *Core) FleetLease(provider string) budget.FleetLease {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sweepLocked(c.now())
	return c.book.FleetLease(provider)
}

// SetFleetKnown takes a read of Postgres (per provider: every host's
// shipped usage of each fleet window, and this host's lifetime shipped
// usage) and, when it moved a fleet limit across its warn threshold or
// its limit, acts on every bottle: the fleet exhausted applies each
// bottle's policy, as a global crossing does; a new period restores what
// the fleet cut off.
func (c *Core) SetFleetKnown(ctx context.Context, known map[string]budget.FleetKnown) {
	c.mu.Lock()
	all := c.book.Slugs()
	exempt := c.book.OperatorExempt(all)
	changed := false
	for p, k := range known {
		if c.book.SetFleetKnown(p, k) {
			changed = true
		}
	}
	c.mu.Unlock()
	if changed {
		c.settle(ctx, all, exempt)
	}
}

// SetFleetReachable says whether Postgres answers. With fleet.fail_open
// an unreachable Postgres sets the fleet scope aside, so a change acts on
// every bottle as a read does; either way, waiting asks look again.
func (c *Core) SetFleetReachable(ctx context.Context, ok bool) {
	c.mu.Lock()
	all := c.book.Slugs()
	exempt := c.book.OperatorExempt(all)
	changed := c.book.SetFleetReachable(ok)
	c.fleetChangedLocked()
	c.mu.Unlock()
	if changed {
		c.settle(ctx, all, exempt)
	}
}

// FleetReachable reports whether Postgres answered the last lease call
// or read of the fleet (true for a host alone).
func (c *Core) FleetReachable() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.book.FleetReachable()
}

// fleetChangedLocked wakes the asks waiting for a lease.
func (c *Core) fleetChangedLocked() {
	close(c.fleet.changed)
	c.fleet.changed = make(chan struct{})
}

// fleetNextLocked finds the soonest local deadline.
func (c *Core) fleetNextLocked() {
	c.fleet.next = time.Time{}
	for _, d := range c.fleet.deadlines {
		if c.fleet.next.IsZero() || d.Before(c.fleet.next) {
			c.fleet.next = d
		}
	}
}

// expireLeasesLocked ends the leases whose local deadline has come: from
// then on this host spends none of them, whether or not Postgres can be
// reached to renew them. The sweep before every answer calls it.
func (c *Core) expireLeasesLocked(now time.Time) {
	if c.fleet.next.IsZero() || now.Before(c.fleet.next) {
		return
	}
	for p, d := range c.fleet.deadlines {
		if !now.Before(d) {
			l := c.book.FleetLease(p)
			c.book.SetFleetLease(p, budget.FleetLease{Ceiling: l.Ceiling})
			delete(c.fleet.deadlines, p)
		}
	}
	c.fleetNextLocked()
}

// awaitLease, when this host's lease of a provider is all that keeps n
// tokens from being granted, tells the keeper and waits (at most
// leaseWait, and while ctx lasts) for it to answer. It reports whether
// the keeper answered, after which the ask is worth making again.
func (c *Core) awaitLease(ctx context.Context, provider string, n int64) bool {
	c.mu.Lock()
	c.sweepLocked(c.now())
	short := c.book.FleetLeaseShort(provider, n)
	keeper, changed := c.fleet.keeper, c.fleet.changed
	c.mu.Unlock()
	if !short || keeper == nil {
		return false
	}
	keeper.Want(provider, n)
	t := time.NewTimer(leaseWait)
	defer t.Stop()
	select {
	case <-changed:
		return true
	case <-ctx.Done():
	case <-t.C:
	}
	return false
}

// GateVerdict is the gate's answer (Verdict), after waiting for a lease
// when this host's lease of the fleet budget is all that denies it: a
// host that returned its lease while idle takes one again as its first
// request comes, without denying that request.
func (c *Core) GateVerdict(ctx context.Context, bottle, agent, provider string, estimate int64) budget.Verdict {
	v := c.Verdict(bottle, agent, provider, estimate)
	if v.Allowed || v.Scope.Kind != budget.ScopeFleet {
		return v
	}
	if c.awaitLease(ctx, provider, max(estimate, 1)) {
		v = c.Verdict(bottle, agent, provider, estimate)
	}
	return v
}

// AllowWaiting is Allow, after which an ask the fleet scope cut short for
// want of lease waits for the keeper and asks again for the rest.
func (c *Core) AllowWaiting(ctx context.Context, req api.AllowanceRequest) (api.Allowance, error) {
	a, err := c.Allow(req)
	if err != nil || a.Granted >= req.Tokens || a.Verdict.Scope.Kind != budget.ScopeFleet {
		return a, err
	}
	if !c.awaitLease(ctx, a.Provider, req.Tokens-a.Granted) {
		return a, nil
	}
	more, err := c.Allow(api.AllowanceRequest{ID: a.ID, Tokens: req.Tokens - a.Granted})
	if err != nil {
		return a, nil // expired or released meanwhile: the first answer stands
	}
	more.Granted += a.Granted
	return more, nil
}

// FleetStates is this host's view of each provider's fleet budget.
func (c *Core) FleetStates() []budget.FleetState {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sweepLocked(c.now())
	return c.fleetStatesLocked()
}

// fleetStatesLocked is FleetStates; c.mu must be held.
func (c *Core) fleetStatesLocked() []budget.FleetState {
	out := []budget.FleetState{}
	for _, p := range c.book.FleetProviders() {
		if st, ok := c.book.FleetState(p); ok {
			out = append(out, st)
		}
	}
	return out
}
