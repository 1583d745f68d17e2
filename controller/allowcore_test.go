package controller_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/controller"
)

// These tests drive the core's allowances (SPEC section 11) over the fake
// ledger, with a clock the test moves.

// clock is a time the test sets; the core reads it as its Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// allowRig is a rig whose core runs on settings s and a test clock.
type allowRig struct {
	*rig
	clock *clock
}

func newAllowRig(t *testing.T, s *budget.Settings) *allowRig {
	t.Helper()
	if s == nil {
		s = budget.DefaultSettings()
	}
	f, enf := newFakeLedger(), &heldEnforcer{}
	clk := &clock{now: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)}
	c, err := controller.NewCore(context.Background(), controller.Config{Ledger: f, Ingester: &fakeIngester{f: f}, Enforcer: enf, Settings: s, Now: clk.Now})
	if err != nil {
		t.Fatalf("NewCore: %v", err)
	}
	return &allowRig{rig: &rig{t: t, f: f, enf: enf, core: c}, clock: clk}
}

// allow asks the core and fails the test on error.
func (r *allowRig) allow(req api.AllowanceRequest) api.Allowance {
	r.t.Helper()
	a, err := r.core.Allow(req)
	if err != nil {
		r.t.Fatalf("allow %+v: %v", req, err)
	}
	return a
}

// ask opens an allowance of tokens for agent a of bottle on claude.
func (r *allowRig) ask(bottle string, tokens int64) api.Allowance {
	r.t.Helper()
	return r.allow(api.AllowanceRequest{Bottle: bottle, Agent: "a", Provider: "claude", Tokens: tokens})
}

// settle commits a report of tokens naming allowance id.
func (r *allowRig) settle(reportID, bottle, id string, tokens int64) api.IngestReply {
	r.t.Helper()
	rep := budget.Report{ID: reportID, Bottle: bottle, Agent: "a", Provider: "claude", Usage: budget.Usage{Output: tokens}, Complete: true, TS: r.clock.Now()}
	if err := r.core.Weigh(&rep); err != nil {
		r.t.Fatalf("weigh %s: %v", reportID, err)
	}
	reply, err := r.core.Ingest(context.Background(), []budget.Report{rep}, []string{id})
	if err != nil {
		r.t.Fatalf("ingest %s: %v", reportID, err)
	}
	return reply
}

// held is what a bottle's verdict shows held, and its remaining.
func (r *allowRig) held(bottle string) (held, remaining int64) {
	v := r.core.Verdict(bottle, "a", "claude", 0)
	return v.Held, v.Remaining
}

func (r *allowRig) wantHeld(when, bottle string, held, remaining int64) {
	r.t.Helper()
	if h, rem := r.held(bottle); h != held || rem != remaining {
		r.t.Errorf("%s: %s holds %d with %d remaining; want %d held, %d remaining", when, bottle, h, rem, held, remaining)
	}
}

func TestCoreAllowGrants(t *testing.T) {
	tests := []struct {
		name        string
		used, held  int64 // before the ask
		state       budget.Action
		asked       int64
		wantGranted int64
		wantReason  string // fragment; "" = none
	}{
		{"full", 100, 200, budget.Action{}, 300, 300, ""},
		{"partial", 100, 600, budget.Action{}, 500, 300, "only 300 of the 500 claude tokens asked are left in the bottle budget b1: 100 of 1000 used, 600 held"},
		{"zero: the rest is held", 100, 900, budget.Action{}, 1, 0, "only 0 of the 1"},
		{"zero: exhausted", 1000, 0, budget.Action{}, 1, 0, "bottle budget b1 exhausted"},
		{"zero: cut off by an operator", 0, 0, budget.Action{Kind: budget.ActCutoff, Reason: "stop"}, 1, 0, "bottle b1 is pending"},
		{"renew only", 0, 100, budget.Action{}, 0, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newAllowRig(t, nil)
			r.register("b1", api.BottleRequest{Agent: "a", Budget: claude(1000)})
			if tt.used > 0 {
				r.ingest("used", "b1", tt.used)
			}
			if tt.held > 0 {
				r.ask("b1", tt.held)
			}
			if tt.state.Kind != "" {
				if _, err := r.core.Act(context.Background(), "b1", tt.state.Kind, tt.state.Reason); err != nil {
					t.Fatal(err)
				}
			}
			a := r.ask("b1", tt.asked)
			if a.Granted != tt.wantGranted || a.Held != tt.wantGranted {
				t.Errorf("got %d granted, %d held; want %d", a.Granted, a.Held, tt.wantGranted)
			}
			if (tt.wantReason == "") != (a.Verdict.Reason == "") || !strings.Contains(a.Verdict.Reason, tt.wantReason) {
				t.Errorf("reason %q, want one containing %q", a.Verdict.Reason, tt.wantReason)
			}
			if a.ID == "" || !strings.HasPrefix(a.ID, "al-") || !a.ExpiresAt.Equal(r.clock.Now().Add(budget.DefaultAllowanceTTL)) {
				t.Errorf("allowance %q expiring %v; want an al- id expiring a TTL from now", a.ID, a.ExpiresAt)
			}
			wantHeld := tt.held + tt.wantGranted
			if tt.used >= 1000 {
				wantHeld = 0
			}
			if a.Verdict.Held != wantHeld {
				t.Errorf("the reply's verdict holds %d, want %d (after the grant)", a.Verdict.Held, wantHeld)
			}
		})
	}
}

// TestCoreAllowPrecedence: under nearest a bottle's own budget bounds its
// grants and the global one does not; under strict every limited scope
// does.
func TestCoreAllowPrecedence(t *testing.T) {
	for _, tt := range []struct {
		prec budget.Precedence
		want int64
	}{{budget.Nearest, 800}, {budget.Strict, 50}} {
		t.Run(string(tt.prec), func(t *testing.T) {
			s := budget.DefaultSettings()
			s.Precedence, s.Budget = tt.prec, budget.Limits{"claude": budget.Lifetime(100)}
			r := newAllowRig(t, s)
			r.register("b1", api.BottleRequest{Agent: "a", Budget: claude(1000)})
			r.ingest("used", "b1", 0)
			r.ask("b1", 50)
			if a := r.ask("b1", 800); a.Granted != tt.want {
				t.Errorf("got %d granted, want %d (%s)", a.Granted, tt.want, a.Verdict.Reason)
			}
		})
	}
}

// TestCoreAllowParentShared: two child bottles under one parent budget
// cannot together be granted more than the parent has left.
func TestCoreAllowParentShared(t *testing.T) {
	r := newAllowRig(t, nil)
	r.register("p", api.BottleRequest{Agent: "a", Budget: claude(1000)})
	r.register("c1", api.BottleRequest{Agent: "a", Parent: "p"})
	r.register("c2", api.BottleRequest{Agent: "a", Parent: "p"})
	r.ingest("used", "c1", 100)
	a1 := r.ask("c1", 600)
	a2 := r.ask("c2", 600)
	if a1.Granted != 600 || a2.Granted != 300 {
		t.Errorf("got %d and %d granted; want 600 and the 300 the parent has left", a1.Granted, a2.Granted)
	}
	if a2.Verdict.Scope != (budget.Scope{Kind: budget.ScopeParent, ID: "p"}) {
		t.Errorf("c2's grant decided at %+v, want the parent's budget", a2.Verdict.Scope)
	}
	r.wantHeld("both children hold", "p", 900, 0)
}

// TestCoreAllowSettleAndRelease: a report naming an allowance settles what
// it counted (not below 0; a duplicate settles nothing again, nor does a
// report for another bottle or an unknown id, which still counts); a
// release gives back the rest; an extend adds to it and renews.
func TestCoreAllowSettleAndRelease(t *testing.T) {
	r := newAllowRig(t, nil)
	r.register("b1", api.BottleRequest{Agent: "a", Budget: claude(1000)})
	r.register("b2", api.BottleRequest{Agent: "a"})
	a := r.ask("b1", 400)
	r.settle("r1", "b1", a.ID, 150)
	r.wantHeld("a report of 150 settled", "b1", 250, 600)
	r.settle("r1", "b1", a.ID, 150)
	r.wantHeld("the same report again (a duplicate)", "b1", 250, 600)
	r.settle("r2", "b2", a.ID, 50)
	r.wantHeld("a report for another bottle", "b1", 250, 600)
	if reply := r.settle("r3", "b1", "al-unknown", 10); reply.Accepted != 1 {
		t.Errorf("a report naming an unknown allowance: %+v, want accepted", reply)
	}
	r.wantHeld("a report naming no live allowance", "b1", 250, 590)

	r.clock.advance(10 * time.Second)
	more := r.allow(api.AllowanceRequest{ID: a.ID, Tokens: 100})
	if more.Granted != 100 || more.Held != 350 || !more.ExpiresAt.Equal(r.clock.Now().Add(budget.DefaultAllowanceTTL)) {
		t.Errorf("extend: %+v; want 100 granted, 350 held, renewed", more)
	}
	r.settle("r4", "b1", a.ID, 500)
	r.wantHeld("a report larger than the hold", "b1", 0, 1000-150-10-500)
	if err := r.core.Release(a.ID); err != nil {
		t.Fatal(err)
	}
	if err := r.core.Release(a.ID); !errors.Is(err, budget.ErrNotFound) {
		t.Errorf("a second release: %v, want ErrNotFound", err)
	}
	if _, err := r.core.Allow(api.AllowanceRequest{ID: a.ID, Tokens: 1}); !errors.Is(err, budget.ErrNotFound) {
		t.Errorf("extending a released allowance: %v, want ErrNotFound", err)
	}

	b := r.ask("b1", 0)
	r.allow(api.AllowanceRequest{ID: b.ID, Tokens: 40})
	if err := r.core.Release(b.ID); err != nil {
		t.Fatal(err)
	}
	if v := r.core.Verdict("b1", "a", "claude", 0); v.Held != 0 {
		t.Errorf("after release: %d held, want 0", v.Held)
	}
}

// TestCoreAllowExpiry: an allowance not renewed within the TTL is dropped
// and its holds given back, so that the room it held is granted to the
// next asker (no phantom denials after its holder died); one renewed in
// time lives on.
func TestCoreAllowExpiry(t *testing.T) {
	s := budget.DefaultSettings()
	s.AllowanceTTL = 10 * time.Second
	r := newAllowRig(t, s)
	r.register("b1", api.BottleRequest{Agent: "a", Budget: claude(1000)})
	dead := r.ask("b1", 600)
	alive := r.ask("b1", 300)
	for range 3 {
		r.clock.advance(6 * time.Second)
		r.allow(api.AllowanceRequest{ID: alive.ID})
	}
	r.wantHeld("the dead holder's TTL passed", "b1", 300, 700)
	if a := r.ask("b1", 700); a.Granted != 700 {
		t.Errorf("after the dead holder's expiry: %d granted, want 700", a.Granted)
	}
	if _, err := r.core.Allow(api.AllowanceRequest{ID: dead.ID}); !errors.Is(err, budget.ErrNotFound) {
		t.Errorf("renewing an expired allowance: %v, want ErrNotFound", err)
	}
	if reply := r.settle("late", "b1", dead.ID, 5); reply.Accepted != 1 {
		t.Errorf("a late report naming the expired allowance: %+v, want it counted", reply)
	}
	r.clock.advance(10 * time.Second)
	r.wantHeld("every holder gone", "b1", 0, 995)
}

// TestCoreAllowForgetDropsHolds: forgetting a bottle closes its
// allowances and gives its holds back to its ancestors.
func TestCoreAllowForgetDropsHolds(t *testing.T) {
	r := newAllowRig(t, nil)
	r.register("p", api.BottleRequest{Agent: "a", Budget: claude(1000)})
	r.register("c", api.BottleRequest{Agent: "a", Parent: "p"})
	a := r.ask("c", 700)
	if err := r.core.Forget(context.Background(), "c"); err != nil {
		t.Fatal(err)
	}
	r.wantHeld("the child forgotten", "p", 0, 1000)
	if _, err := r.core.Allow(api.AllowanceRequest{ID: a.ID}); !errors.Is(err, budget.ErrNotFound) {
		t.Errorf("the forgotten bottle's allowance: %v, want ErrNotFound", err)
	}
	if _, _, global := r.globalHeld(); global != 0 {
		t.Errorf("host-wide held %d after the forget, want 0", global)
	}
}

// globalHeld is the status's allowances and claude held host-wide.
func (r *allowRig) globalHeld() (allowances int, status api.Status, held int64) {
	r.t.Helper()
	var st api.Status
	if err := r.core.Status(context.Background(), &st); err != nil {
		r.t.Fatal(err)
	}
	return st.Allowances, st, st.Held["claude"]
}

// TestCoreAllowUnknownBottle: a bottle the daemon does not know is granted
// what the global budget has room for, without being registered (nothing
// written to the ledger); its report, registering it, settles the hold.
func TestCoreAllowUnknownBottle(t *testing.T) {
	s := budget.DefaultSettings()
	s.Budget = budget.Limits{"claude": budget.Lifetime(500)}
	r := newAllowRig(t, s)
	a := r.ask("ghost", 800)
	if a.Granted != 500 || a.Verdict.Scope.Kind != budget.ScopeGlobal {
		t.Errorf("got %+v; want 500 granted by the global budget", a)
	}
	if bottles, _, _ := r.f.snapshot(); len(bottles) != 0 {
		t.Errorf("the ledger holds %v; an allowance writes nothing", bottles)
	}
	if _, err := r.core.Bottle("ghost"); !errors.Is(err, budget.ErrNotFound) {
		t.Errorf("the unknown bottle registered by an allowance: %v", err)
	}
	r.settle("r1", "ghost", a.ID, 200)
	n, _, held := r.globalHeld()
	if n != 1 || held != 300 {
		t.Errorf("status: %d allowances holding %d; want 1 holding 300", n, held)
	}
}

// TestCoreAllowRefusesBadRequests: each bad field is named, and nothing
// is granted.
func TestCoreAllowRefusesBadRequests(t *testing.T) {
	r := newAllowRig(t, nil)
	r.register("b1", api.BottleRequest{Agent: "a", Budget: claude(1000)})
	a := r.ask("b1", 10)
	for _, tt := range []struct {
		req   api.AllowanceRequest
		field string
		class error
	}{
		{api.AllowanceRequest{Bottle: "b1", Provider: "claude", Tokens: -1}, "tokens", budget.ErrInvalid},
		{api.AllowanceRequest{Bottle: "b1", Provider: "claude", Tokens: budget.MaxFieldTokens + 1}, "tokens", budget.ErrInvalid},
		{api.AllowanceRequest{Bottle: "", Provider: "claude", Tokens: 1}, "bottle", budget.ErrInvalid},
		{api.AllowanceRequest{Bottle: "b 1", Provider: "claude", Tokens: 1}, "bottle", budget.ErrInvalid},
		{api.AllowanceRequest{Bottle: "b1", Provider: "", Tokens: 1}, "provider", budget.ErrInvalid},
		{api.AllowanceRequest{Bottle: "b1", Agent: "a/b", Provider: "claude", Tokens: 1}, "agent", budget.ErrInvalid},
		{api.AllowanceRequest{ID: a.ID, Bottle: "b2", Tokens: 1}, "bottle", budget.ErrInvalid},
		{api.AllowanceRequest{ID: a.ID, Provider: "codex", Tokens: 1}, "provider", budget.ErrInvalid},
		{api.AllowanceRequest{ID: a.ID, Agent: "other", Tokens: 1}, "agent", budget.ErrInvalid},
		{api.AllowanceRequest{ID: "al-nope", Tokens: 1}, "allowance", budget.ErrNotFound},
	} {
		_, err := r.core.Allow(tt.req)
		if !errors.Is(err, tt.class) || !strings.Contains(err.Error(), tt.field) {
			t.Errorf("%+v: got %v, want %v naming %s", tt.req, err, tt.class, tt.field)
		}
	}
	r.wantHeld("after the refusals", "b1", 10, 990)
}

// TestCoreAllowConcurrentNeverOverGrants: many meters asking at once,
// on two bottles under one parent, are together granted no more than the
// parent had room for, and all of it.
func TestCoreAllowConcurrentNeverOverGrants(t *testing.T) {
	r := newAllowRig(t, nil)
	r.register("p", api.BottleRequest{Agent: "a", Budget: claude(10_000)})
	r.register("c1", api.BottleRequest{Agent: "a", Parent: "p"})
	r.register("c2", api.BottleRequest{Agent: "a", Parent: "p"})
	r.ingest("used", "c1", 1_234)
	const room = 10_000 - 1_234
	var granted atomic.Int64
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			slug := fmt.Sprintf("c%d", 1+i%2)
			a, err := r.core.Allow(api.AllowanceRequest{Bottle: slug, Agent: "a", Provider: "claude", Tokens: 97})
			if err != nil {
				t.Error(err)
				return
			}
			granted.Add(a.Granted)
			for range 20 {
				more, err := r.core.Allow(api.AllowanceRequest{ID: a.ID, Tokens: 13})
				if err != nil {
					t.Error(err)
					return
				}
				granted.Add(more.Granted)
			}
		}()
	}
	wg.Wait()
	// 64 × (97 + 20×13) = 22,848 asked: more than the room.
	if got := granted.Load(); got != room {
		t.Errorf("granted %d in all; want exactly the %d the parent had room for", got, room)
	}
	r.wantHeld("after the rush", "p", room, 0)
}

// TestCoreAllowRestartForgetsAllowances: allowances live in memory only;
// a new core over the same ledger holds nothing, and an old id is not
// found (its meter asks again).
func TestCoreAllowRestartForgetsAllowances(t *testing.T) {
	r := newAllowRig(t, nil)
	r.register("b1", api.BottleRequest{Agent: "a", Budget: claude(1000)})
	a := r.ask("b1", 600)
	again := newRig(t, r.f)
	if v := again.core.Verdict("b1", "a", "claude", 0); v.Held != 0 || v.Remaining != 1000 {
		t.Errorf("after a restart: %+v; want nothing held", v)
	}
	if _, err := again.core.Allow(api.AllowanceRequest{ID: a.ID}); !errors.Is(err, budget.ErrNotFound) {
		t.Errorf("the old allowance after a restart: %v, want ErrNotFound", err)
	}
}

// TestCoreAllowSettleIsAtomic: while reports settle an allowance, a
// reader of the gate always sees used + held at what was granted: never
// a report both counted and still held (which would deny room that is
// there), never neither (which would grant it twice).
func TestCoreAllowSettleIsAtomic(t *testing.T) {
	r := newAllowRig(t, nil)
	r.register("b1", api.BottleRequest{Agent: "a", Budget: claude(1_000_000)})
	const granted = 100_000
	a := r.ask("b1", granted)
	done, reading := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 0; ; n++ {
			v := r.core.Verdict("b1", "a", "claude", 0)
			if n == 0 {
				close(reading)
			}
			if v.Used+v.Held != granted {
				t.Errorf("the gate saw %d used + %d held, want %d together", v.Used, v.Held, granted)
				return
			}
			select {
			case <-done:
				return
			default:
			}
		}
	}()
	<-reading
	for i := range 200 {
		r.settle(fmt.Sprintf("r%d", i), "b1", a.ID, 500)
	}
	close(done)
	wg.Wait()
	r.wantHeld("every report in", "b1", 0, 1_000_000-granted)
}

// TestCoreAllowSettlesAfterRegistration: an allowance opened before its
// bottle registered (agent unresolved) is settled by the bottle's
// reports once it has, whose agent resolves to the registered one.
func TestCoreAllowSettlesAfterRegistration(t *testing.T) {
	r := newAllowRig(t, nil)
	a := r.allow(api.AllowanceRequest{Bottle: "late", Provider: "claude", Tokens: 300})
	r.register("late", api.BottleRequest{Agent: "impl", Budget: claude(1000)})
	rep := budget.Report{ID: "r1", Bottle: "late", Provider: "claude", Usage: budget.Usage{Output: 100}, Complete: true, TS: r.clock.Now()}
	if err := r.core.Weigh(&rep); err != nil || rep.Agent != "impl" {
		t.Fatalf("weigh: %v, agent %q; want impl", err, rep.Agent)
	}
	if _, err := r.core.Ingest(context.Background(), []budget.Report{rep}, []string{a.ID}); err != nil {
		t.Fatal(err)
	}
	if v := r.core.Verdict("late", "", "claude", 0); v.Used != 100 || v.Held != 200 || v.Remaining != 700 {
		t.Errorf("got %+v; want 100 used, 200 held, 700 remaining", v)
	}
}
