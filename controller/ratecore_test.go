package controller_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/controller"
	"github.com/bot-bottle/bottlecap/internal/testutil"
)

// These tests drive the rate guard and the pause (SPEC section 12) on the
// fake ledger, with a test clock whose Advance runs the core's timers.

// rateRig is a rig whose core runs on a test clock.
type rateRig struct {
	*rig
	clock *testutil.Clock
	seq   int
}

// rateStart is where the rigs' clocks start: on a whole second, so that a
// burst sent at once falls in one one-second bucket.
var rateStart = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// newRateRig starts a core with a claude rate guard of 1000 tokens a
// minute for every bottle, the given policy for a tripped guard, and the
// seeded ledger f (nil: empty).
func newRateRig(t *testing.T, policy budget.Policy, f *fakeLedger) *rateRig {
	t.Helper()
	s := budget.DefaultSettings()
	s.Rate = budget.Rates{"claude": 1000}
	s.RatePolicy = policy
	if f == nil {
		f = newFakeLedger()
	}
	clk := testutil.NewClock(rateStart)
	enf := &heldEnforcer{}
	c, err := controller.NewCore(context.Background(), controller.Config{Ledger: f, Ingester: &fakeIngester{f: f}, Enforcer: enf,
		Settings: s, Now: clk.Now, AfterFunc: clk.AfterFunc})
	if err != nil {
		t.Fatalf("NewCore: %v", err)
	}
	return &rateRig{rig: &rig{t: t, f: f, enf: enf, core: c}, clock: clk}
}

// send commits one claude report of n tokens for the bottle, now.
func (r *rateRig) send(bottle string, n int64) api.IngestReply {
	r.t.Helper()
	r.seq++
	return r.ingest(fmt.Sprintf("r%d", r.seq), bottle, n)
}

// finishAll finishes every job not finished yet, in order, as done.
func (r *rateRig) finishAll(from int) int {
	r.t.Helper()
	n := r.enf.count()
	for i := from; i < n; i++ {
		r.enf.job(r.t, i).Finished(1, nil)
	}
	return n
}

// audited lists the audit entries of one kind as their details.
func (r *rateRig) audited(kind string) []string {
	_, _, audit := r.f.snapshot()
	var out []string
	for _, e := range audit {
		if e.Kind == kind {
			out = append(out, e.Detail)
		}
	}
	return out
}

// tripped sends a burst that trips b1's guard and finishes the pause.
func (r *rateRig) tripped() {
	r.t.Helper()
	r.register("b1", api.BottleRequest{Agent: "a"})
	for range 3 {
		r.send("b1", 400)
	}
	r.finishAll(0)
	r.wantState("b1", budget.Paused)
}

// TestRateGuardTripsOnABurst: the report that takes the last minute past
// the guard claims the bottle (pending, the gate denies), journals a
// pause by the rate guard with a reason naming the rate, and once the
// engine has done it the bottle is paused.
func TestRateGuardTripsOnABurst(t *testing.T) {
	r := newRateRig(t, budget.Pause, nil)
	r.register("b1", api.BottleRequest{Agent: "a"})
	r.send("b1", 400)
	if reply := r.send("b1", 600); !reply.Verdicts[0].Allowed {
		t.Fatalf("at the guard (1000 of 1000) the gate denies: %+v", reply.Verdicts[0])
	}
	r.wantJournal()
	reply := r.send("b1", 1)
	want := "rate guard: 1,001 claude tokens in the last minute, over 1k/min"
	if v := reply.Verdicts[0]; v.Allowed || v.State != budget.Pending || !strings.Contains(v.Reason, want) {
		t.Errorf("verdict of the tripping report %+v, want denied, pending, saying %q", v, want)
	}
	r.wantJournal("pause b1 pending")
	if got := r.audited("action_pending"); len(got) != 1 || !strings.Contains(got[0], "(rate guard): "+want) {
		t.Errorf("audit %q, want the pause by the rate guard naming the rate", got)
	}
	r.enf.job(t, 0).Finished(1, nil)
	r.wantState("b1", budget.Paused)
	if b, _ := r.core.Bottle("b1"); b.StateReason != want || !b.ByRateGuard || b.ByOperator {
		t.Errorf("paused bottle %+v, want the rate's reason and the guard's mark", b.Bottle)
	}
}

// TestRateGuardUnderTheGuard: as much as the guard allows in one minute,
// or more than it spread over two, never trips it; other bottles' reports
// do not count toward a bottle's rate.
func TestRateGuardUnderTheGuard(t *testing.T) {
	r := newRateRig(t, budget.Pause, nil)
	r.register("b1", api.BottleRequest{Agent: "a"})
	r.register("b2", api.BottleRequest{Agent: "a"})
	for range 10 {
		r.send("b1", 100)
		r.send("b2", 90)
		r.clock.Advance(5 * time.Second)
	}
	r.clock.Advance(15 * time.Second) // the first of b1's reports leaves the window
	r.send("b1", 100)
	r.clock.Advance(30 * time.Second)
	r.send("b1", 500)
	r.send("b2", 99)
	r.wantJournal()
	r.wantState("b1", budget.Active)
	r.wantState("b2", budget.Active)
	v, _ := r.core.Bottle("b1")
	if len(v.RateGuards) != 1 || v.RateGuards[0] != (api.RateGuard{Provider: "claude", Guard: 1000, LastMinute: 800}) {
		t.Errorf("b1's rate guards %+v, want claude 1000 with 800 in the last minute (1600 sent in all)", v.RateGuards)
	}
}

// TestRateGuardLiftsAfterAQuietMinute: the pause the guard made is lifted
// once the rate has stayed under the guard for a full minute: the burst
// leaves the window a minute after it came, and a minute later the lift
// is journaled and run as a restore by the rate guard. A report that
// arrives while paused (a response in flight) over the guard moves the
// lift on.
func TestRateGuardLiftsAfterAQuietMinute(t *testing.T) {
	r := newRateRig(t, budget.Pause, nil)
	r.tripped()
	r.clock.Advance(30 * time.Second)
	r.send("b1", 1500) // in flight when the guard tripped: over the guard again
	r.clock.Advance(119 * time.Second)
	r.wantJournal("pause b1 done")
	r.clock.Advance(time.Second) // a minute after the late report left the window
	r.wantJournal("pause b1 done", "restore b1 pending")
	if got := r.audited("action_pending"); len(got) != 2 || !strings.Contains(got[1], "(rate guard): rate guard lifted") {
		t.Errorf("audit %q, want the restore by the rate guard", got)
	}
	r.finishAll(1)
	r.wantState("b1", budget.Active)
	if b, _ := r.core.Bottle("b1"); b.ByRateGuard {
		t.Error("a restored bottle keeps the guard's mark")
	}
}

// TestRateGuardLiftTiming: with no report after the burst, the burst
// leaves the window a minute after it came and the lift follows a minute
// after that, to the second.
func TestRateGuardLiftTiming(t *testing.T) {
	r := newRateRig(t, budget.Pause, nil)
	r.tripped()
	r.clock.Advance(2*budget.RateSpan - time.Second)
	r.wantJournal("pause b1 done")
	r.clock.Advance(time.Second)
	r.wantJournal("pause b1 done", "restore b1 pending")
}

// TestOperatorPauseNeverAutoLifted: an operator's pause stays however
// quiet the bottle is; so does a pause the guard made once an operator
// acted on the bottle after it.
func TestOperatorPauseNeverAutoLifted(t *testing.T) {
	r := newRateRig(t, budget.Pause, nil)
	ctx := context.Background()
	r.register("b2", api.BottleRequest{Agent: "a"})
	if _, err := r.core.Act(ctx, "b2", budget.ActPause, "looks stuck"); err != nil {
		t.Fatal(err)
	}
	r.tripped() // b1, by the guard
	if _, err := r.core.Act(ctx, "b1", budget.ActCutoff, "keep it off"); err != nil {
		t.Fatal(err)
	}
	r.finishAll(0)
	r.clock.Advance(time.Hour)
	r.wantState("b2", budget.Paused)
	r.wantState("b1", budget.CutOff)
	if got := journaled(r.f); slices.Contains(got, "restore b1 pending") || slices.Contains(got, "restore b2 pending") || r.clock.Pending() != 0 {
		t.Errorf("journal %q with %d timers pending: an operator's action was lifted", got, r.clock.Pending())
	}
}

// TestRestoreRearmsTheGuard: after a restore the window starts empty: the
// tokens of the burst no longer count, and only a new excess trips the
// guard again.
func TestRestoreRearmsTheGuard(t *testing.T) {
	r := newRateRig(t, budget.Pause, nil)
	r.tripped()
	if _, err := r.core.Act(context.Background(), "b1", budget.ActRestore, "it was fine"); err != nil {
		t.Fatal(err)
	}
	r.finishAll(1)
	r.wantState("b1", budget.Active)
	r.send("b1", 900)
	r.wantJournal("pause b1 done", "restore b1 done")
	r.send("b1", 101)
	r.wantJournal("pause b1 done", "restore b1 done", "pause b1 pending")
}

// TestRatePolicies: rate_policy picks the action; the guard lifts a cutoff
// as it lifts a pause, and never a freeze or a kill.
func TestRatePolicies(t *testing.T) {
	for _, tt := range []struct {
		policy budget.Policy
		lifted bool
	}{{budget.Cutoff, true}, {budget.Freeze, false}, {budget.Kill, false}} {
		t.Run(string(tt.policy), func(t *testing.T) {
			r := newRateRig(t, tt.policy, nil)
			r.register("b1", api.BottleRequest{Agent: "a"})
			r.send("b1", 1001)
			r.finishAll(0)
			r.wantState("b1", budget.StateAfter(budget.ActionFor(tt.policy)))
			r.clock.Advance(time.Hour)
			want := []string{fmt.Sprintf("%s b1 done", budget.ActionFor(tt.policy))}
			if tt.lifted {
				want = append(want, "restore b1 pending")
			}
			r.wantJournal(want...)
		})
	}
}

// TestBudgetPauseLiftedWhenRaised: a bottle whose budget paused it
// (shutdown: pause) is restored when the budget is raised above its
// usage, as a cut-off one is; the guard has no say in it.
func TestBudgetPauseLiftedWhenRaised(t *testing.T) {
	r := newRateRig(t, budget.Pause, nil)
	r.register("b1", api.BottleRequest{Agent: "a", Budget: claude(500), Shutdown: "pause"})
	r.send("b1", 500)
	r.finishAll(0)
	r.wantState("b1", budget.Paused)
	if b, _ := r.core.Bottle("b1"); b.ByRateGuard {
		t.Error("a budget's pause carries the guard's mark")
	}
	if _, err := r.core.SetLimits(context.Background(), "bottle", "b1", budget.Limits{"claude": budget.Lifetime(5000)}); err != nil {
		t.Fatal(err)
	}
	r.wantJournal("pause b1 done", "restore b1 pending")
	r.finishAll(1)
	r.wantState("b1", budget.Active)
}

// TestRaisedBudgetLeavesTheGuardsPause: raising the budget of a bottle the
// rate guard paused restores nothing: only a quiet minute lifts it.
func TestRaisedBudgetLeavesTheGuardsPause(t *testing.T) {
	r := newRateRig(t, budget.Pause, nil)
	r.tripped()
	if _, err := r.core.SetLimits(context.Background(), "bottle", "b1", budget.Limits{"claude": budget.Lifetime(1_000_000)}); err != nil {
		t.Fatal(err)
	}
	r.wantJournal("pause b1 done")
}

// TestLiftActsOnABudgetExhaustedMeanwhile: reports in flight when the
// guard tripped exhausted the bottle's budget while it was paused; the
// lift restores it and the budget's policy then acts at once.
func TestLiftActsOnABudgetExhaustedMeanwhile(t *testing.T) {
	r := newRateRig(t, budget.Pause, nil)
	r.register("b1", api.BottleRequest{Agent: "a", Budget: claude(2000)})
	r.send("b1", 1001)
	r.send("b1", 1000) // exhausts the budget while the pause is pending
	r.finishAll(0)
	r.clock.Advance(2 * budget.RateSpan)
	r.finishAll(1)
	r.wantJournal("pause b1 done", "restore b1 done", "cutoff b1 pending")
}

// TestRateGuardLiftAfterRestart: a bottle the guard paused before a
// restart is lifted a quiet minute after the start (its windows start
// empty); one an operator paused is not.
func TestRateGuardLiftAfterRestart(t *testing.T) {
	f := seeded([]budget.Bottle{
		{Slug: "guarded", Agent: "a", State: budget.Paused, StateReason: "rate guard: …", ByRateGuard: true},
		{Slug: "held", Agent: "a", State: budget.Paused, StateReason: "by operator", ByOperator: true},
	}, nil, nil)
	r := newRateRig(t, budget.Pause, f)
	r.clock.Advance(budget.RateSpan - time.Second)
	r.wantJournal()
	r.clock.Advance(time.Second)
	r.wantJournal("restore guarded pending")
}

// TestRateGuardFromRegistration: a registration's guard overrides the
// settings' for its bottle, shows in the bottle's view, and a bad one is
// refused naming the field, changing nothing.
func TestRateGuardFromRegistration(t *testing.T) {
	r := newRateRig(t, budget.Pause, nil)
	r.register("b1", api.BottleRequest{Agent: "a", Rate: map[string]string{"claude": "100/min", "codex": "5k/min"}})
	for _, bad := range []map[string]string{{"claude": "300k"}, {"claude": "1k/h"}, {"bad name": "1k/min"}} {
		_, err := r.core.Register(context.Background(), "b1", api.BottleRequest{Rate: bad})
		if !errors.Is(err, budget.ErrInvalid) || !strings.Contains(err.Error(), "rate") {
			t.Errorf("rate %v: %v, want ErrInvalid naming the rate", bad, err)
		}
	}
	v, _ := r.core.Bottle("b1")
	if v.Rate["claude"] != 100 || len(v.RateGuards) != 2 || v.RateGuards[0].Guard != 100 || v.RateGuards[1].Guard != 5000 {
		t.Fatalf("bottle %+v with guards %+v, want its own claude 100 and codex 5000", v.Bottle, v.RateGuards)
	}
	r.send("b1", 101)
	r.wantJournal("pause b1 pending")
}

// TestRateGuardFromLabels: a container's bot-bottle.rate label registers
// the bottle's guard as discovery finds it.
func TestRateGuardFromLabels(t *testing.T) {
	r := newRateRig(t, budget.Pause, nil)
	err := r.core.Discover(context.Background(), controller.Container{ID: "0123456789abcdef", Bottle: "b1", Agent: "a",
		Rate: budget.Rates{"claude": 200}})
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := r.core.Bottle("b1"); v.Rate["claude"] != 200 {
		t.Fatalf("discovered bottle %+v, want the label's claude guard of 200", v.Bottle)
	}
	r.send("b1", 201)
	r.wantJournal("pause b1 pending")
}
