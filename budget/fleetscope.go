package budget

import (
	"fmt"
	"sort"
	"time"
)

// The fleet scope (SPEC section 14). One budget spans every host of a
// fleet; Postgres holds what each host shipped and the leases they took.
// The book knows three things of it, which the daemon feeds in:
//
//   - the fleet limit per provider, from settings (fleet.budget, windows
//     allowed), and fleet.fail_open;
//   - the fleet's usage as this host last read it: every host's shipped
//     usage in each window, and this host's own lifetime shipped total as
//     of the same read (FleetKnown), refreshed every few seconds;
//   - this host's lease per provider (FleetLease): its lifetime usage of
//     the provider may reach the lease's ceiling while the lease is live.
//
// The fleet's usage of a window, as this host knows it, is every host's
// shipped usage plus this host's unshipped usage (its lifetime total less
// what it had shipped at the read: recent reports, counted in the current
// window until they are shipped and counted where they belong). The room
// the fleet scope leaves is the smaller of the limit less that usage and
// what is held here, and what the lease leaves: its ceiling less this
// host's lifetime total and what its allowances hold. Crossing the limit
// as known acts on every bottle, as a global crossing does; a lease that
// is spent, expired or absent denies (no action: the host is only out of
// lease, and the keeper takes another), unless fail_open is set and
// Postgres is unreachable, when the fleet scope stands aside and the
// local scopes alone decide.

// fleetScope is the one fleet budget's scope.
var fleetScope = Scope{ScopeFleet, "-"}

// FleetLease is this host's lease of one provider's fleet budget: its
// lifetime usage of the provider may reach Ceiling while Live. The lease
// keeper sets it after each grant, renewal or return (a returned lease is
// the zero FleetLease); the daemon clears Live at the lease's local
// deadline, before Postgres could consider it expired.
type FleetLease struct {
	Ceiling int64
	Live    bool
}

// FleetWindowUse is every host's shipped usage in the current period of
// one window of the fleet limit, as Postgres last said; ResetsAt is when
// a calendar period ends (zero otherwise).
type FleetWindowUse struct {
	Window   Window
	Used     int64
	ResetsAt time.Time
}

// FleetKnown is what this host last read from Postgres of one provider:
// the shipped usage of every window of the fleet limit, and this host's
// own lifetime shipped usage as of the same read.
type FleetKnown struct {
	Windows    []FleetWindowUse
	OwnShipped int64
}

// fleetBook is the fleet as the book knows it; nil when no fleet is set.
type fleetBook struct {
	failOpen  bool
	reachable bool
	providers map[string]*fleetProvider
}

// fleetProvider is one provider's fleet limit with what is known of its
// usage and this host's lease of it. shipped and resets are aligned with
// set, so that a verdict reads them without a lookup.
type fleetProvider struct {
	name       string
	set        LimitSet
	shipped    []int64
	resets     []time.Time
	known      bool // a read of Postgres has come since the limit was set
	ownShipped int64
	lease      FleetLease
}

// setFleet puts the settings' fleet limits in force (a nil fleet, or
// one without a budget: none), with what fail_open says. What was known
// of a provider's usage and its lease stays, for the windows the new
// limits keep.
func (b *Book) setFleet(fl *Fleet) {
	if fl == nil || len(fl.Budget) == 0 {
		b.fleet = nil
		return
	}
	old := b.fleet
	f := &fleetBook{failOpen: fl.FailOpen, reachable: true, providers: map[string]*fleetProvider{}}
	if old != nil {
		f.reachable = old.reachable
	}
	for p, set := range fl.Budget {
		fp := &fleetProvider{name: p, set: set, shipped: make([]int64, len(set)), resets: make([]time.Time, len(set))}
		if old != nil {
			if prev := old.providers[p]; prev != nil {
				fp.keep(prev)
			}
		}
		f.providers[p] = fp
	}
	b.fleet = f
}

// keep carries over what was known of a provider, and its lease, to its
// limits as they now are.
func (fp *fleetProvider) keep(prev *fleetProvider) {
	fp.lease, fp.ownShipped, fp.known = prev.lease, prev.ownShipped, prev.known
	for i, l := range fp.set {
		for j, pl := range prev.set {
			if pl.Window == l.Window {
				fp.shipped[i], fp.resets[i] = prev.shipped[j], prev.resets[j]
			}
		}
	}
}

// FleetLimits are the fleet limits in force (nil without a fleet).
func (b *Book) FleetLimits() Limits {
	if b.fleet == nil {
		return nil
	}
	out := make(Limits, len(b.fleet.providers))
	for p, fp := range b.fleet.providers {
		out[p] = fp.set
	}
	return out
}

// SetFleetKnown takes a read of Postgres for one provider. It reports
// whether the read moved any fleet limit across its warn threshold or its
// limit, either way: the daemon then looks for crossings and restores
// over every bottle (a read that shows the fleet exhausted acts, one that
// shows a new period restores). Windows the read does not give read 0.
func (b *Book) SetFleetKnown(provider string, k FleetKnown) bool {
	fp := b.fleetProvider(provider)
	if fp == nil {
		return false
	}
	before := b.fleetMarks(fp)
	fp.known, fp.ownShipped = true, max(k.OwnShipped, 0)
	for i, l := range fp.set {
		fp.shipped[i], fp.resets[i] = 0, time.Time{}
		for _, w := range k.Windows {
			if w.Window == l.Window {
				fp.shipped[i], fp.resets[i] = max(w.Used, 0), w.ResetsAt
			}
		}
	}
	return b.fleetMarks(fp) != before
}

// SetFleetLease sets this host's lease of one provider.
func (b *Book) SetFleetLease(provider string, l FleetLease) {
	if fp := b.fleetProvider(provider); fp != nil {
		fp.lease = l
	}
}

// FleetLease is this host's lease of one provider (the zero lease when
// there is none or no fleet limits the provider).
func (b *Book) FleetLease(provider string) FleetLease {
	if fp := b.fleetProvider(provider); fp != nil {
		return fp.lease
	}
	return FleetLease{}
}

// SetFleetReachable says whether Postgres answers. It matters only with
// fail_open, where an unreachable Postgres sets the fleet scope aside; it
// reports whether that changed which scopes apply (the daemon then looks
// for crossings and restores, as after a read).
func (b *Book) SetFleetReachable(ok bool) bool {
	if b.fleet == nil || b.fleet.reachable == ok {
		return false
	}
	b.fleet.reachable = ok
	return b.fleet.failOpen
}

// FleetReachable reports whether Postgres answered last (true without a
// fleet).
func (b *Book) FleetReachable() bool { return b.fleet == nil || b.fleet.reachable }

// FleetProviders lists the providers the fleet limits, sorted.
func (b *Book) FleetProviders() []string {
	if b.fleet == nil {
		return nil
	}
	out := make([]string, 0, len(b.fleet.providers))
	for p := range b.fleet.providers {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// fleetProvider is the fleet's state for a provider, nil when no fleet
// limits it.
func (b *Book) fleetProvider(provider string) *fleetProvider {
	if b.fleet == nil {
		return nil
	}
	return b.fleet.providers[provider]
}

// fleetApplies reports whether the fleet scope weighs on a provider now:
// it limits it, and fail_open has not set it aside while Postgres is
// unreachable.
func (b *Book) fleetApplies(provider string) (*fleetProvider, bool) {
	fp := b.fleetProvider(provider)
	if fp == nil || (b.fleet.failOpen && !b.fleet.reachable) {
		return nil, false
	}
	return fp, true
}

// fleetUnshipped is what this host has counted of a provider and not yet
// shipped, as of the last read.
func (b *Book) fleetUnshipped(fp *fleetProvider) int64 {
	return max(b.used.global[fp.name]-fp.ownShipped, 0)
}

// fleetApplicable is limit i of the fleet with the fleet's usage of its
// window as known, and what this host's allowances hold.
func (b *Book) fleetApplicable(fp *fleetProvider, i int) applicable {
	l := fp.set[i]
	return applicable{Scope: fleetScope, Limit: l.Tokens, Window: l.Window, Used: SatAdd(fp.shipped[i], b.fleetUnshipped(fp)),
		Held: b.held.global[fp.name], resets: fp.resets[i]}
}

// fleetGoverning is the fleet limit that decides for a provider: the
// first exhausted, else the one with the least room as known. ok is false
// before the first read of Postgres: until then only the lease bounds.
func (b *Book) fleetGoverning(fp *fleetProvider) (applicable, bool) {
	if !fp.known || len(fp.set) == 0 {
		return applicable{}, false
	}
	var best applicable
	for i := range fp.set {
		a := b.fleetApplicable(fp, i)
		if a.exhausted() {
			return a, true
		}
		if i == 0 || a.room() < best.room() {
			best = a
		}
	}
	return best, true
}

// leaseOut says why a lease leaves no room.
type leaseOut uint8

const (
	leaseOK    leaseOut = iota
	leaseNone           // no live lease: never taken, returned, or past its deadline
	leaseSpent          // this host's usage reached the ceiling
)

// leaseRoom is what this host's lease of a provider leaves to grant: its
// ceiling less the host's lifetime total (or what it shipped, should the
// local ledger hold less) and what its allowances hold.
func (b *Book) leaseRoom(fp *fleetProvider) (int64, leaseOut) {
	if !fp.lease.Live {
		return 0, leaseNone
	}
	spent := max(b.used.global[fp.name], fp.ownShipped)
	if spent >= fp.lease.Ceiling {
		return 0, leaseSpent
	}
	return max(fp.lease.Ceiling-spent-b.held.global[fp.name], 0), leaseOK
}

// fleetVerdict folds the fleet scope into a verdict the local scopes
// decided (g, when ok): an exhausted local limit still governs; else an
// exhausted fleet limit, else a lease that leaves nothing, denies; else
// the fleet governs when it leaves less room than the local limit.
func (b *Book) fleetVerdict(v Verdict, g applicable, ok bool, fp *fleetProvider) Verdict {
	if ok && g.exhausted() {
		return v
	}
	f, known := b.fleetGoverning(fp)
	if known && f.exhausted() {
		return fleetDenied(v, f, exhaustedReason(f, fp.name))
	}
	lease, out := b.leaseRoom(fp)
	if !known {
		f = applicable{Scope: fleetScope, Used: b.fleetUnshipped(fp), Held: b.held.global[fp.name], Limit: fp.set[0].Tokens, Window: fp.set[0].Window}
	}
	if out != leaseOK {
		return fleetDenied(v, f, b.leaseReason(fp, out))
	}
	room := lease
	if known {
		room = min(room, f.room())
	}
	if ok && g.room() <= room {
		return v
	}
	v.Unlimited = false
	v.Scope, v.Limit, v.Used, v.Held = f.Scope, f.Limit, f.Used, f.Held
	v.Window, v.ResetsAt, v.Remaining = f.Window.String(), f.resets, room
	return v
}

// fleetDenied is v denied by the fleet scope, for the reason given.
func fleetDenied(v Verdict, f applicable, reason string) Verdict {
	v.Allowed, v.Unlimited = false, false
	v.Scope, v.Limit, v.Used, v.Held = f.Scope, f.Limit, f.Used, f.Held
	v.Window, v.ResetsAt, v.Remaining = f.Window.String(), f.resets, 0
	v.Reason = reason
	return v
}

// leaseReason says why this host may spend no more of the fleet budget.
func (b *Book) leaseReason(fp *fleetProvider, out leaseOut) string {
	var why string
	switch {
	case out == leaseSpent:
		why = fmt.Sprintf("this host has spent its lease of the fleet's %s budget (%d tokens used, lease ceiling %d)",
			fp.name, b.used.global[fp.name], fp.lease.Ceiling)
	case fp.lease.Ceiling > 0:
		why = fmt.Sprintf("this host's lease of the fleet's %s budget has expired", fp.name)
	default:
		why = fmt.Sprintf("this host holds no lease of the fleet's %s budget", fp.name)
	}
	if !b.fleet.reachable {
		return "fleet budget: " + why + ", and Postgres is unreachable: denying until it is back (fleet.fail_open is false)"
	}
	return "fleet budget: " + why + "; a lease is being asked of Postgres"
}

// fleetMarks packs, for each fleet limit of a provider, whether it is
// exhausted and past its warn threshold as known: what a read of
// Postgres compares before and after.
func (b *Book) fleetMarks(fp *fleetProvider) uint64 {
	if !fp.known {
		return 0
	}
	var m uint64
	for i := range fp.set {
		if i >= 32 {
			break
		}
		a := b.fleetApplicable(fp, i)
		if a.exhausted() {
			m |= 1 << (2 * i)
		}
		if a.Used > 0 && a.Used >= b.warnLevel(a.Limit) {
			m |= 2 << (2 * i)
		}
	}
	return m
}

// recordFleet returns the fleet crossings of a report this host counted,
// which raised its lifetime total from was: its unshipped usage, and so
// the fleet's usage as known, grows by what it counted.
func (b *Book) recordFleet(r Report, was int64) []Event {
	fp, ok := b.fleetApplies(r.Provider)
	if !ok || !fp.known {
		return nil
	}
	var events []Event
	before := max(was-fp.ownShipped, 0)
	for i := range fp.set {
		a := b.fleetApplicable(fp, i)
		from := SatAdd(fp.shipped[i], before)
		switch {
		case passes(from, a.Used, a.Limit):
			events = append(events, b.event(EventCrossed, a, r.Provider))
		case passes(from, a.Used, b.warnLevel(a.Limit)):
			events = append(events, b.event(EventWarn, a, r.Provider))
		}
	}
	return events
}

// fleetOver lists the fleet limits over a bottle, for every provider the
// fleet limits, each with the bottle's policy: the fleet governs every
// bottle, as the global budget does under strict.
func (b *Book) fleetOver(bt *Bottle) []budgetOver {
	if b.fleet == nil {
		return nil
	}
	var out []budgetOver
	for _, p := range b.FleetProviders() {
		fp, ok := b.fleetApplies(p)
		if !ok || !fp.known {
			continue
		}
		for i := range fp.set {
			out = append(out, budgetOver{b.fleetApplicable(fp, i), p, b.policyOf(bt)})
		}
	}
	return out
}

// FleetLimitUses lists the fleet limits of a provider with the fleet's
// usage of each window as this host knows it (nothing before the first
// read of Postgres, or while fail_open sets the fleet aside): the limit
// uses of a bottle end with them, and the metrics show them alone.
func (b *Book) FleetLimitUses(provider string) []LimitUse {
	fp, ok := b.fleetApplies(provider)
	if !ok || !fp.known {
		return nil
	}
	out := make([]LimitUse, 0, len(fp.set))
	for i := range fp.set {
		out = append(out, b.fleetApplicable(fp, i).use(provider))
	}
	return out
}

// FleetState is what the status shows of one provider's fleet budget on
// this host: the governing limit as known, this host's lease and what it
// leaves.
type FleetState struct {
	Provider string `json:"provider"`
	// Known is false until the first read of Postgres.
	Known     bool   `json:"known"`
	Limit     int64  `json:"limit"`
	Window    string `json:"window"`
	Used      int64  `json:"used"`
	Unshipped int64  `json:"unshipped"`
	Held      int64  `json:"held"`
	// Ceiling is this host's lease (its lifetime usage may reach it),
	// LeaseLive whether it may still be spent from, LeaseRoom what it
	// leaves, Remaining what this host may still spend of the fleet.
	Ceiling   int64 `json:"lease_ceiling"`
	LeaseLive bool  `json:"lease_live"`
	LeaseRoom int64 `json:"lease_room"`
	Remaining int64 `json:"remaining"`
	Exhausted bool  `json:"exhausted"`
	// SetAside is true while fail_open lets the local scopes alone decide.
	SetAside bool `json:"set_aside,omitempty"`
}

// FleetState is one provider's fleet budget on this host (ok false when
// no fleet limits it).
func (b *Book) FleetState(provider string) (FleetState, bool) {
	fp := b.fleetProvider(provider)
	if fp == nil {
		return FleetState{}, false
	}
	st := FleetState{Provider: provider, Known: fp.known, Unshipped: b.fleetUnshipped(fp), Held: b.held.global[provider],
		Ceiling: fp.lease.Ceiling, LeaseLive: fp.lease.Live, Limit: fp.set[0].Tokens, Window: fp.set[0].Window.String()}
	st.LeaseRoom, _ = b.leaseRoom(fp)
	st.Remaining = st.LeaseRoom
	_, applies := b.fleetApplies(provider)
	st.SetAside = !applies
	if f, ok := b.fleetGoverning(fp); ok {
		st.Limit, st.Window, st.Used, st.Exhausted = f.Limit, f.Window.String(), f.Used, f.exhausted()
		st.Remaining = min(st.Remaining, f.room())
	}
	return st, true
}

// FleetLeaseShort reports whether this host's lease of a provider is what
// keeps n tokens from being granted: the fleet scope applies, Postgres
// answers, the lease leaves less than n, and the fleet as known (when
// read) leaves more than the lease. Only then can a new lease help; the
// daemon asks its keeper for one.
func (b *Book) FleetLeaseShort(provider string, n int64) bool {
	fp, ok := b.fleetApplies(provider)
	if !ok || !b.fleet.reachable {
		return false
	}
	room, _ := b.leaseRoom(fp)
	if room >= max(n, 1) {
		return false
	}
	f, known := b.fleetGoverning(fp)
	return !known || (!f.exhausted() && f.room() > room)
}
