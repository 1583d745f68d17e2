package controller_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/controller"
)

// The fleet scope on the core (SPEC section 14), with a fake lease source
// in place of Postgres and the keeper: it answers each want with a lease
// of size tokens past what the host has spent and holds, or, when shut,
// with the lease as it was.

// show is a verdict for a failure message (%+v would print the String of
// its embedded Scope alone).
func show(v budget.Verdict) string {
	return fmt.Sprintf("{allowed %v %s limit %d used %d held %d remaining %d window %s reason %q}",
		v.Allowed, v.Scope, v.Limit, v.Used, v.Held, v.Remaining, v.Window, v.Reason)
}

// fakeLeases is a lease source the test controls.
type fakeLeases struct {
	core  *controller.Core
	clock *clock
	ttl   time.Duration

	mu    sync.Mutex
	size  int64 // what each lease adds past the host's spending; 0 grants nothing
	wants []int64
}

func (f *fakeLeases) Want(provider string, n int64) {
	f.mu.Lock()
	f.wants = append(f.wants, n)
	size := f.size
	f.mu.Unlock()
	go func() {
		if size == 0 {
			l := f.core.FleetLease(provider)
			f.core.SetFleetLease(provider, l.Ceiling, time.Time{})
			return
		}
		used, held := f.core.FleetSpent(provider)
		f.core.SetFleetLease(provider, used+held+max(size, n), f.clock.Now().Add(f.ttl))
	}()
}

func (f *fakeLeases) wanted() []int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]int64(nil), f.wants...)
}

// fleetRig is an allowRig whose settings give claude a fleet budget of
// limit, with the fake lease source as its keeper and Postgres read once:
// the other hosts have shipped others.
type fleetRig struct {
	*allowRig
	leases *fakeLeases
}

func newFleetRig(t *testing.T, limit string, others int64, edit func(*budget.Settings)) *fleetRig {
	t.Helper()
	set, err := budget.ParseLimitSet(limit)
	if err != nil {
		t.Fatal(err)
	}
	s := budget.DefaultSettings()
	s.Fleet = &budget.Fleet{Budget: budget.Limits{"claude": set}}
	if edit != nil {
		edit(s)
	}
	f, enf := newFakeLedger(), &heldEnforcer{}
	clk := &clock{now: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)}
	c, err := controller.NewCore(context.Background(), controller.Config{Ledger: f, Ingester: &fakeIngester{f: f}, Enforcer: enf, Settings: s, Now: clk.Now,
		Fleet: func(context.Context) api.FleetStatus { return api.FleetStatus{} }})
	if err != nil {
		t.Fatalf("NewCore: %v", err)
	}
	r := &allowRig{rig: &rig{t: t, f: f, enf: enf, core: c}, clock: clk}
	leases := &fakeLeases{core: r.core, clock: r.clock, ttl: 30 * time.Second, size: 1000}
	r.core.SetFleetKeeper(leases)
	r.read(others, 0)
	return &fleetRig{allowRig: r, leases: leases}
}

// read gives the core a read of Postgres: every host's shipped usage
// (others plus this host's ownShipped) in each fleet window.
func (r *allowRig) read(others, ownShipped int64) {
	var ws []budget.FleetWindowUse
	for _, l := range r.core.FleetLimits()["claude"] {
		ws = append(ws, budget.FleetWindowUse{Window: l.Window, Used: others + ownShipped})
	}
	r.core.SetFleetKnown(context.Background(), map[string]budget.FleetKnown{"claude": {Windows: ws, OwnShipped: ownShipped}})
}

// TestCoreFleetGateTakesALease: a host holding no lease answers its first
// gate request after its keeper brought one, within the lease, and says
// so with the fleet's scope.
func TestCoreFleetGateTakesALease(t *testing.T) {
	r := newFleetRig(t, "1M", 0, nil)
	if v := r.core.Verdict("b1", "a", "claude", 0); v.Allowed || !strings.Contains(v.Reason, "no lease of the fleet's claude budget") {
		t.Fatalf("before any lease: %s, want a denial naming the fleet's lease", show(v))
	}
	v := r.core.GateVerdict(context.Background(), "b1", "a", "claude", 400)
	if !v.Allowed || v.Scope.Kind != budget.ScopeFleet || v.Remaining != 1000 || v.Limit != 1_000_000 {
		t.Errorf("gate after the keeper answered: %s, want allowed at the fleet with the lease's 1000 remaining", show(v))
	}
	if got := r.leases.wanted(); len(got) != 1 || got[0] != 400 {
		t.Errorf("wants %v, want one of 400", got)
	}
	if v := r.core.GateVerdict(context.Background(), "b1", "a", "claude", 400); !v.Allowed || len(r.leases.wanted()) != 1 {
		t.Errorf("a second gate within the lease: %s after wants %v, want allowed without asking", show(v), r.leases.wanted())
	}
}

// TestCoreFleetAllowancesComeOutOfTheLease: allowances are granted from
// the lease, their holds counting against it; what the keeper cannot add
// is refused with the fleet named.
func TestCoreFleetAllowancesComeOutOfTheLease(t *testing.T) {
	r := newFleetRig(t, "1M", 0, nil)
	a, err := r.core.AllowWaiting(context.Background(), api.AllowanceRequest{Bottle: "b1", Agent: "a", Provider: "claude", Tokens: 600})
	if err != nil || a.Granted != 600 {
		t.Fatalf("first ask: %+v, %v; want 600 granted from a new lease", a, err)
	}
	r.leases.mu.Lock()
	r.leases.size = 0 // the fleet has nothing more to lease
	r.leases.mu.Unlock()
	b, err := r.core.AllowWaiting(context.Background(), api.AllowanceRequest{Bottle: "b2", Agent: "a", Provider: "claude", Tokens: 600})
	if err != nil || b.Granted != 400 || b.Verdict.Scope.Kind != budget.ScopeFleet {
		t.Fatalf("second ask: %+v, %v; want the 400 the lease leaves, at the fleet", b, err)
	}
	c, err := r.core.AllowWaiting(context.Background(), api.AllowanceRequest{Bottle: "b3", Agent: "a", Provider: "claude", Tokens: 1})
	if err != nil || c.Granted != 0 || !strings.Contains(c.Verdict.Reason, "fleet") {
		t.Errorf("third ask: %+v, %v; want nothing, the fleet named", c, err)
	}
	r.settle("r1", "b1", a.ID, 600)
	if v := r.core.Verdict("b1", "a", "claude", 0); v.Allowed || v.Held != 400 {
		t.Errorf("with the lease spent and held: %s, want denied with 400 held", show(v))
	}
}

// TestCoreFleetLeaseEndsAtItsDeadline: past its local deadline a lease is
// spent no more; with Postgres unreachable the denial says so (fail
// closed), and the local scopes and providers the fleet does not limit
// keep being served.
func TestCoreFleetLeaseEndsAtItsDeadline(t *testing.T) {
	r := newFleetRig(t, "1M", 0, nil)
	r.register("capped", api.BottleRequest{Agent: "a", Budget: budget.Limits{"claude": budget.Lifetime(50)}})
	r.core.SetFleetLease("claude", 5000, r.clock.Now().Add(10*time.Second))
	if v := r.core.Verdict("b1", "a", "claude", 0); !v.Allowed || v.Remaining != 5000 {
		t.Fatalf("within the lease: %s", show(v))
	}
	r.core.SetFleetReachable(context.Background(), false)
	if v := r.core.Verdict("b1", "a", "claude", 0); !v.Allowed || v.Remaining != 5000 {
		t.Fatalf("Postgres unreachable, lease live: %s, want the lease's rest", show(v))
	}
	r.clock.advance(10 * time.Second)
	v := r.core.Verdict("b1", "a", "claude", 0)
	if v.Allowed || v.Scope.Kind != budget.ScopeFleet || !strings.Contains(v.Reason, "has expired, and Postgres is unreachable") {
		t.Errorf("past the deadline: %s, want a fleet denial naming the expiry and Postgres", show(v))
	}
	if v := r.core.GateVerdict(context.Background(), "b1", "a", "claude", 0); v.Allowed || len(r.leases.wanted()) != 0 {
		t.Errorf("gate while unreachable: %s after wants %v; want denied without waiting for a keeper that cannot answer", show(v), r.leases.wanted())
	}
	if v := r.core.Verdict("b1", "a", "codex", 0); !v.Allowed {
		t.Errorf("a provider the fleet does not limit: %s, want allowed", show(v))
	}
	r.ingest("r1", "capped", 60)
	if v := r.core.Verdict("capped", "a", "claude", 0); v.Scope.Kind != budget.ScopeBottle || v.Allowed {
		t.Errorf("a bottle past its own budget: %s, want its bottle budget's denial", show(v))
	}
	r.wantJournal("cutoff capped pending")
}

// TestCoreFleetFailOpen: with fail_open an unreachable Postgres lets the
// local scopes alone decide, and a reachable one brings the lease back.
func TestCoreFleetFailOpen(t *testing.T) {
	r := newFleetRig(t, "1M", 0, func(s *budget.Settings) { s.Fleet.FailOpen = true })
	r.register("capped", api.BottleRequest{Agent: "a", Budget: budget.Limits{"claude": budget.Lifetime(500)}})
	if v := r.core.Verdict("b1", "a", "claude", 0); v.Allowed {
		t.Fatalf("reachable, no lease: %s, want denied", show(v))
	}
	r.core.SetFleetReachable(context.Background(), false)
	if v := r.core.Verdict("b1", "a", "claude", 0); !v.Allowed || !v.Unlimited {
		t.Errorf("unreachable under fail_open: %s, want the local scopes' answer (none limits b1)", show(v))
	}
	if v := r.core.Verdict("capped", "a", "claude", 0); !v.Allowed || v.Scope.Kind != budget.ScopeBottle || v.Remaining != 500 {
		t.Errorf("unreachable under fail_open: %s, want capped's own budget", show(v))
	}
	r.core.SetFleetReachable(context.Background(), true)
	if v := r.core.Verdict("b1", "a", "claude", 0); v.Allowed || v.Scope.Kind != budget.ScopeFleet {
		t.Errorf("reachable again: %s, want the fleet's denial", show(v))
	}
}

// TestCoreFleetCrossingActs: the fleet exhausted, by this host's report
// or by a read showing the others' usage, applies every bottle's policy;
// a read of a new period restores what the fleet cut off.
func TestCoreFleetCrossingActs(t *testing.T) {
	t.Run("a read", func(t *testing.T) {
		r := newFleetRig(t, "1000/day", 100, nil)
		r.register("b1", api.BottleRequest{Agent: "a"})
		r.register("b2", api.BottleRequest{Agent: "a", Shutdown: string(budget.Freeze)})
		r.wantJournal()
		r.read(1000, 0)
		r.wantJournal("cutoff b1 pending", "freeze b2 pending")
		r.wantState("b1", budget.Pending)
		v := r.core.Verdict("b1", "a", "claude", 0)
		if !strings.Contains(v.Reason, "bottle b1 is pending") {
			t.Errorf("verdict %s", show(v))
		}
	})
	t.Run("a report", func(t *testing.T) {
		r := newFleetRig(t, "1000", 500, nil)
		r.register("b1", api.BottleRequest{Agent: "a"})
		r.core.SetFleetLease("claude", 600, r.clock.Now().Add(time.Minute))
		r.ingest("r1", "b1", 499)
		r.wantJournal()
		r.ingest("r2", "b1", 1)
		r.wantJournal("cutoff b1 pending")
	})
	t.Run("a new period restores", func(t *testing.T) {
		r := newFleetRig(t, "1000/day", 100, nil)
		r.register("b1", api.BottleRequest{Agent: "a"})
		r.read(1000, 0)
		r.enf.job(t, 0).Finished(1, nil)
		r.wantState("b1", budget.CutOff)
		r.read(0, 0)
		r.wantJournal("cutoff b1 done", "restore b1 pending")
	})
}

// TestCoreAloneIgnoresTheFleetBudget: a daemon that is no fleet member
// (settings gained fleet: by a reload, which applies at the next start)
// leaves the fleet budget out rather than wait for leases no keeper
// brings.
func TestCoreAloneIgnoresTheFleetBudget(t *testing.T) {
	s := budget.DefaultSettings()
	s.Fleet = &budget.Fleet{Budget: claude(1000)}
	r := newAllowRig(t, s)
	if v := r.core.Verdict("b1", "a", "claude", 0); !v.Allowed || !v.Unlimited {
		t.Errorf("alone, with a fleet budget in settings: %s, want unlimited", show(v))
	}
	if got := r.core.FleetLimits(); got != nil {
		t.Errorf("fleet limits %v, want none", got)
	}
}
