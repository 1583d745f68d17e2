package fleet

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
)

// The lease keeper: the one goroutine of a daemon that takes, renews and
// returns its leases of the fleet budget. It takes a lease when spending
// starts (the core wants one) or when the lease runs low, renews it while
// the host spends, returns what is left when the host has been idle a
// while — or at once when admission wants more than the lease leaves and
// the fleet has no room to add (it yields) — and sets every lease's local
// deadline to the time its request was sent plus the TTL, less a margin:
// the host stops spending from a lease before Postgres could hold it
// expired, without the clocks of the host and the server having to agree.

// LeaseHolder is the daemon's core as the keeper sees it:
// *controller.Core satisfies it.
type LeaseHolder interface {
	// FleetSpent is the host's lifetime usage of a provider and what its
	// allowances hold.
	FleetSpent(provider string) (used, held int64)
	// CloseFleetLease ends the host's lease of a provider at once and
	// returns what the host has spent and holds: the base a return
	// lowers the ceiling to.
	CloseFleetLease(provider string) (base int64)
	SetFleetLease(provider string, ceiling int64, deadline time.Time)
	SetFleetKnown(ctx context.Context, known map[string]budget.FleetKnown)
	SetFleetReachable(ctx context.Context, ok bool)
}

// Leaser grants, renews and returns leases: *DB does, in one transaction.
type Leaser interface {
	Lease(ctx context.Context, ask LeaseAsk) (Lease, error)
}

// KeeperConfig is a keeper's host, fleet and timing.
type KeeperConfig struct {
	Host string
	// Fleet is the fleet settings in force (budget, timezone, lease
	// size), read at every round so that a reload applies.
	Fleet func() *budget.Fleet
	// Leaser is Postgres; a func so that the daemon can hand over the
	// database its membership connects (nil while it cannot).
	Leaser func(ctx context.Context) (Leaser, error)
	Holder LeaseHolder
	Log    *slog.Logger

	// Zero values take the defaults below; tests shorten them.
	TTL  time.Duration // a lease's life in Postgres without renewal
	Tick time.Duration // how often spending is looked at
	Idle time.Duration // how long without spending before a return
	// Yield is how long, after returning a lease the fleet could not
	// top up to what admission wanted, the host takes none again: the
	// other hosts can take what it returned, and it returns so at most
	// once per Yield.
	Yield time.Duration
}

// The defaults of KeeperConfig.
const (
	DefaultLeaseTTL  = 30 * time.Second
	DefaultLeaseTick = 250 * time.Millisecond
	DefaultLeaseIdle = 5 * time.Second
	// DefaultLeaseYield is a few of the other hosts' lease calls long
	// and far below a client's patience: the other hosts pool what is
	// returned, and a host polls Postgres at most twice per Yield while
	// the fleet has no room for it.
	DefaultLeaseYield = 250 * time.Millisecond
)

// Lease sizes when fleet.lease does not say: a fiftieth of the provider's
// smallest fleet limit, within bounds — at least an output slice of a
// stream, at most what a busy host spends in a few seconds.
const (
	minLeaseSize = 4096
	maxLeaseSize = 2_000_000
)

// Keeper keeps a daemon's leases. Run it once; Want wakes it.
type Keeper struct {
	cfg  KeeperConfig
	log  *slog.Logger
	wake chan struct{}

	mu    sync.Mutex // guards wants
	wants map[string]int64

	leases map[string]*kept // the keeper goroutine's own
}

// kept is one provider's lease as the keeper knows it.
type kept struct {
	// ceiling is the last ceiling Postgres granted (or returned to);
	// deadline its local deadline (zero: not live).
	ceiling  int64
	deadline time.Time
	// lastSpent and active say when spending last moved.
	lastSpent int64
	active    time.Time
	// failures and retryAt pace calls while Postgres errs.
	failures int
	retryAt  time.Time
	// yieldedUntil ends the pause after a yield: until then the host
	// takes no lease of the provider (nor yields again).
	yieldedUntil time.Time
}

// NewKeeper prepares a keeper; Run starts it.
func NewKeeper(cfg KeeperConfig) *Keeper {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	setDefault(&cfg.TTL, DefaultLeaseTTL)
	setDefault(&cfg.Tick, DefaultLeaseTick)
	setDefault(&cfg.Idle, DefaultLeaseIdle)
	setDefault(&cfg.Yield, DefaultLeaseYield)
	k := &Keeper{cfg: cfg, log: cfg.Log.With("fleet_host", cfg.Host), wake: make(chan struct{}, 1),
		wants: map[string]int64{}, leases: map[string]*kept{}}
	return k
}

// Want tells the keeper, without waiting, that admission wants n more
// tokens of a provider than the host's lease leaves.
func (k *Keeper) Want(provider string, n int64) {
	k.mu.Lock()
	k.wants[provider] = max(k.wants[provider], n)
	k.mu.Unlock()
	select {
	case k.wake <- struct{}{}:
	default:
	}
}

// Run keeps the leases until ctx ends, then returns them (within a few
// seconds, best effort: a lease not returned expires and keeps reserving
// what this host has not shipped, which the next start settles).
func (k *Keeper) Run(ctx context.Context) {
	tick := time.NewTicker(k.cfg.Tick)
	defer tick.Stop()
	for {
		k.round(ctx)
		select {
		case <-ctx.Done():
			k.returnAll()
			return
		case <-k.wake:
		case <-tick.C:
		}
	}
}

// round looks at every provider the fleet limits once.
func (k *Keeper) round(ctx context.Context) {
	f := k.cfg.Fleet()
	for _, p := range slices.Sorted(maps.Keys(f.Budget)) {
		k.keep(ctx, f, p, k.takeWant(p))
	}
}

func (k *Keeper) takeWant(p string) int64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	n := k.wants[p]
	delete(k.wants, p)
	return n
}

// keep decides, for one provider, whether to take, renew or return.
func (k *Keeper) keep(ctx context.Context, f *budget.Fleet, p string, wanted int64) {
	st := k.leases[p]
	if st == nil {
		st = &kept{}
		k.leases[p] = st
	}
	used, held := k.cfg.Holder.FleetSpent(p)
	spent, now := budget.SatAdd(used, held), time.Now()
	if wanted > 0 || spent != st.lastSpent || held > 0 {
		st.active = now
	}
	st.lastSpent = spent
	if now.Before(st.retryAt) {
		return
	}
	if now.Before(st.yieldedUntil) {
		if wanted > 0 {
			k.cfg.Holder.SetFleetLease(p, 0, time.Time{}) // no lease yet: the asks waiting are answered
		}
		return
	}
	live := !st.deadline.IsZero() && now.Before(st.deadline)
	busy := now.Sub(st.active) < k.cfg.Idle
	size := leaseSize(f, p)
	target := max(size, 2*wanted)
	var room int64
	if live {
		room = st.ceiling - spent
	}
	switch {
	case wanted > 0 && room < wanted:
		k.take(ctx, f, p, st, spent, live, target, wanted)
	case busy && room < target/2:
		k.take(ctx, f, p, st, spent, live, target, 0)
	case live && busy && st.deadline.Sub(now) < k.cfg.TTL/2:
		k.take(ctx, f, p, st, spent, live, target, 0) // renew: push the expiry, top the room up
	case !busy && held == 0 && st.ceiling > spent:
		k.giveBack(ctx, f, p, st)
	}
}

// take grants or renews: the ceiling stands on what the host has spent
// and holds or, while the lease is live, on its ceiling (a renewal never
// lowers it under what may already be granted from it), and asks for
// what brings the room up to target. When the fleet grants less than
// asked and the room still falls short of need — what admission wants —
// the host cannot use its lease: it yields it rather than taking it up.
func (k *Keeper) take(ctx context.Context, f *budget.Fleet, p string, st *kept, spent int64, live bool, target, need int64) {
	base := spent
	if live {
		base = max(spent, st.ceiling)
	}
	want := max(budget.SatAdd(spent, target)-base, 0)
	sent := time.Now()
	l, err := k.lease(ctx, k.ask(f, p, base, want))
	if err != nil {
		k.failed(ctx, p, st, err)
		return
	}
	if need > 0 && l.Granted < want && l.Ceiling-spent < need {
		st.ceiling = l.Ceiling // what Postgres holds until the yield returns it
		k.yield(ctx, f, p, st)
		return
	}
	st.ceiling, st.deadline = l.Ceiling, sent.Add(k.cfg.TTL-k.margin())
	k.cfg.Holder.SetFleetLease(p, l.Ceiling, st.deadline)
	k.answered(ctx, p, st, l)
}

// giveBack returns what the lease has left: the host stops spending from
// it first, so that nothing is granted from what Postgres frees. A lease
// with nothing left needs no call (a return would only move its ceiling
// up to what the host overran).
func (k *Keeper) giveBack(ctx context.Context, f *budget.Fleet, p string, st *kept) {
	base := k.cfg.Holder.CloseFleetLease(p)
	st.deadline = time.Time{}
	if st.ceiling <= base {
		k.cfg.Holder.SetFleetLease(p, 0, time.Time{}) // no call to answer: the asks waiting are answered here
		return
	}
	l, err := k.lease(ctx, k.ask(f, p, base, 0))
	if err != nil {
		k.failed(ctx, p, st, err) // still reserved in Postgres: tried again next round
		return
	}
	st.ceiling = l.Ceiling
	k.answered(ctx, p, st, l)
}

// yield returns, at once, a lease the fleet could not top up to what
// admission wants: the last of a fleet budget, split among hosts in
// leftovers each smaller than a request, would otherwise stay parked
// until each host went idle. What the host's allowances hold stays
// leased (the return stands on it); the rest is pooled for the first
// host to ask, and this host takes none for Yield, so that it does not
// take back what it returned before another host could.
func (k *Keeper) yield(ctx context.Context, f *budget.Fleet, p string, st *kept) {
	st.yieldedUntil = time.Now().Add(k.cfg.Yield)
	k.log.Debug("fleet: lease short of what admission wants and no room to add; returned for the other hosts", "provider", p)
	k.giveBack(ctx, f, p, st)
}

// ask is this host's ask of provider p's lease, standing on base, under
// the fleet settings in force: want 0 returns the lease.
func (k *Keeper) ask(f *budget.Fleet, p string, base, want int64) LeaseAsk {
	return LeaseAsk{Host: k.cfg.Host, Provider: p, Base: base, Want: want, TTL: k.cfg.TTL, Limits: f.Budget[p], Loc: f.Location()}
}

// lease makes one call to Postgres, bounded in time.
func (k *Keeper) lease(ctx context.Context, ask LeaseAsk) (Lease, error) {
	ctx, cancel := context.WithTimeout(ctx, k.cfg.TTL/3)
	defer cancel()
	db, err := k.cfg.Leaser(ctx)
	if err != nil {
		return Lease{}, err
	}
	return db.Lease(ctx, ask)
}

// answered feeds what a call read of the fleet to the core.
func (k *Keeper) answered(ctx context.Context, p string, st *kept, l Lease) {
	if st.failures > 0 {
		k.log.Info("fleet: leases work again", "provider", p)
	}
	st.failures, st.retryAt = 0, time.Time{}
	k.cfg.Holder.SetFleetKnown(ctx, map[string]budget.FleetKnown{p: l.Known})
	k.cfg.Holder.SetFleetReachable(ctx, true)
}

// failed paces the next call (100 ms doubling to 5 s) and tells the core
// Postgres does not answer, which wakes the asks waiting for a lease.
func (k *Keeper) failed(ctx context.Context, p string, st *kept, err error) {
	if st.failures == 0 {
		k.log.Warn("fleet: lease call failed; this host spends what its lease has left, then denies for the fleet", "provider", p, "err", err.Error())
	}
	st.failures++
	st.retryAt = time.Now().Add(min(100*time.Millisecond<<min(st.failures-1, 6), 5*time.Second))
	k.cfg.Holder.SetFleetReachable(ctx, false)
}

// margin is how long before Postgres could hold a lease expired the host
// stops spending from it: a tenth of the TTL covers a slow local clock
// and the time between a grant's check and its spending.
func (k *Keeper) margin() time.Duration { return k.cfg.TTL / 10 }

// returnAll returns every lease with room left as the daemon stops.
func (k *Keeper) returnAll() {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	f := k.cfg.Fleet()
	for p, st := range k.leases {
		if _, ok := f.Budget[p]; ok && st.ceiling > 0 {
			k.giveBack(ctx, f, p, st)
		}
	}
}

// leaseSize is what one lease asks for a provider: fleet.lease, else a
// fiftieth of its smallest fleet limit within [minLeaseSize,
// maxLeaseSize].
func leaseSize(f *budget.Fleet, p string) int64 {
	if f.Lease > 0 {
		return f.Lease
	}
	smallest := int64(maxLeaseSize) * 50
	for _, l := range f.Budget[p] {
		smallest = min(smallest, l.Tokens)
	}
	return min(max(smallest/50, minLeaseSize), maxLeaseSize)
}
