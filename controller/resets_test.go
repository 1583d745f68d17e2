package controller_test

import (
	"context"
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

// These tests drive windowed limits (SPEC section 12) through the core
// over the fake ledger, on a clock the test moves: the timer at each
// boundary, and what a reset restores and what it leaves alone.

// noon is a Monday, 2026-12-07, at 12:00 UTC.
var noon = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

type resetRig struct {
	t     *testing.T
	f     *fakeLedger
	clk   *testutil.Clock
	core  *controller.Core
	heard *heardNotifier
}

// newResetRig is a core on settings s and a clock at noon, over a fake
// ledger holding the reports given, whose actions finish at once.
func newResetRig(t *testing.T, s *budget.Settings, reports ...budget.Report) *resetRig {
	t.Helper()
	if s == nil {
		s = budget.DefaultSettings()
	}
	f := newFakeLedger()
	f.reports = reports
	clk := testutil.NewClock(noon)
	heard := &heardNotifier{}
	c, err := controller.NewCore(context.Background(), controller.Config{Ledger: f, Ingester: &fakeIngester{f: f},
		Enforcer: &fakeEnforcer{}, Notifier: heard, Settings: s, Now: clk.Now, AfterFunc: clk.AfterFunc})
	if err != nil {
		t.Fatalf("NewCore: %v", err)
	}
	t.Cleanup(c.Close)
	return &resetRig{t: t, f: f, clk: clk, core: c, heard: heard}
}

// claudeReport is n claude tokens of bottle's agent "a" at ts.
func claudeReport(id, bottle string, n int64, ts time.Time) budget.Report {
	return budget.Report{ID: id, Bottle: bottle, Agent: "a", Provider: "claude", Usage: budget.Usage{Input: n}, Counted: n, Complete: true, TS: ts}
}

// ingestAt commits one report of n claude tokens dated ts.
func (r *resetRig) ingestAt(id, bottle string, n int64, ts time.Time) {
	r.t.Helper()
	if _, err := r.core.Ingest(context.Background(), []budget.Report{claudeReport(id, bottle, n, ts)}, nil); err != nil {
		r.t.Fatalf("ingest %s: %v", id, err)
	}
}

// ingest commits one report dated now.
func (r *resetRig) ingest(id, bottle string, n int64) { r.ingestAt(id, bottle, n, r.clk.Now()) }

func (r *resetRig) register(slug, limits string) {
	r.t.Helper()
	var l budget.LimitSet
	var err error
	if l, err = budget.ParseLimitSet(limits); err != nil {
		r.t.Fatal(err)
	}
	if _, err := r.core.Register(context.Background(), slug, api.BottleRequest{Agent: "a", Budget: budget.Limits{"claude": l}}); err != nil {
		r.t.Fatalf("register %s: %v", slug, err)
	}
}

func (r *resetRig) bottle(slug string) api.Bottle {
	r.t.Helper()
	b, err := r.core.Bottle(slug)
	if err != nil {
		r.t.Fatal(err)
	}
	return b
}

// waitState waits until the bottle is in state want, in the book and the
// ledger.
func (r *resetRig) waitState(slug string, want budget.State) {
	r.t.Helper()
	eventually(r.t, slug+" "+string(want), func() bool {
		bottles, _, _ := r.f.snapshot()
		return r.bottle(slug).State == want && bottles[slug].State == want
	})
}

// set moves the clock to t, running the timers due by then.
func (r *resetRig) set(t time.Time) { r.clk.Advance(t.Sub(r.clk.Now())) }

// wantTimers checks how many timers the core has set.
func (r *resetRig) wantTimers(n int) {
	r.t.Helper()
	if got := r.clk.Pending(); got != n {
		r.t.Errorf("%d timers set, want %d", got, n)
	}
}

// resets are the bottles of the reset notices heard since the last call.
func (r *resetRig) resets() []string {
	var out []string
	for _, n := range r.heard.take() {
		if n.Kind == budget.NoticeReset {
			out = append(out, n.Bottle)
		}
	}
	return out
}

func (r *resetRig) auditKinds(kind string) []budget.AuditEntry {
	_, _, audit := r.f.snapshot()
	var out []budget.AuditEntry
	for _, e := range audit {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

func TestWindowResetRestoresWhatTheWindowCutOff(t *testing.T) {
	r := newResetRig(t, nil)
	r.register("daily", "100/day")
	r.register("both", "100/day+150")
	r.register("oper", "100/day")
	r.register("weekly", "100/day+100/week")
	r.ingest("d1", "daily", 100)
	r.ingest("b1", "both", 160)
	r.ingest("o1", "oper", 10)
	r.ingest("w1", "weekly", 100)
	if _, err := r.core.Act(context.Background(), "oper", budget.ActCutoff, "by hand"); err != nil {
		t.Fatal(err)
	}
	for _, slug := range []string{"daily", "both", "oper", "weekly"} {
		r.waitState(slug, budget.CutOff)
	}
	midnight := noon.Add(12 * time.Hour)
	r.wantTimers(1)
	r.resets()
	r.set(midnight.Add(-time.Nanosecond))
	if b := r.bottle("daily"); b.State != budget.CutOff {
		t.Fatalf("daily is %s before midnight, want cut off", b.State)
	}
	r.set(midnight)
	r.waitState("daily", budget.Active)
	if got := r.resets(); !slices.Equal(got, []string{"daily"}) {
		t.Errorf("reset notices for %q, want one for daily", got)
	}
	r.wantTimers(1)
	for _, slug := range []string{"both", "oper", "weekly"} {
		if b := r.bottle(slug); b.State != budget.CutOff {
			t.Errorf("%s is %s after the reset, want still cut off (%s)", slug, b.State, b.StateReason)
		}
	}
	if b := r.bottle("oper"); !b.ByOperator {
		t.Errorf("oper: the operator's cutoff became the budget's")
	}
	_, actions, _ := r.f.snapshot()
	var restores []budget.Action
	for _, a := range actions {
		if a.Kind == budget.ActRestore {
			restores = append(restores, a)
		}
	}
	if len(restores) != 1 || restores[0].Bottle != "daily" || restores[0].Operator || !strings.Contains(restores[0].Reason, "budget window reset") {
		t.Errorf("restores journaled: %+v, want one for daily by the budget, naming the reset", restores)
	}
	v := r.core.Verdict("daily", "", "claude", 0)
	if !v.Allowed || v.Window != "day" || v.Used != 0 || !v.ResetsAt.Equal(midnight.Add(24*time.Hour)) {
		t.Errorf("daily after the reset: %+v", v)
	}
	// The week resets on Monday: the weekly bottle comes back then.
	r.set(time.Date(2026, 12, 14, 0, 0, 0, 0, time.UTC))
	r.waitState("weekly", budget.Active)
	if got := r.resets(); !slices.Contains(got, "weekly") || slices.Contains(got, "oper") || slices.Contains(got, "both") {
		t.Errorf("reset notices on Monday for %q, want weekly's and none for oper or both", got)
	}
}

func TestWindowResetRearmsTheWarning(t *testing.T) {
	r := newResetRig(t, nil)
	r.register("w", "100/day")
	r.ingest("1", "w", 85)
	r.waitState("w", budget.Warned)
	eventually(t, "the warning audited", func() bool { return len(r.auditKinds("warn")) == 1 })
	r.set(noon.Add(12 * time.Hour))
	r.waitState("w", budget.Active)
	if got := r.auditKinds("warn_rearmed"); len(got) != 1 || got[0].Bottle != "w" {
		t.Errorf("re-armed audit %+v, want one for w", got)
	}
	r.ingest("2", "w", 85)
	r.waitState("w", budget.Warned)
	eventually(t, "the next day's warning audited", func() bool { return len(r.auditKinds("warn")) == 2 })
}

func TestSettingsBringingAWindowLoadItsUsage(t *testing.T) {
	yesterday := noon.Add(-13 * time.Hour) // 23:00 the day before
	r := newResetRig(t, nil,
		claudeReport("old", "b", 30, yesterday),
		claudeReport("t1", "b", 40, noon.Add(-2*time.Hour)),
	)
	r.register("b", "1000")
	r.ingest("t2", "b", 20)
	r.wantTimers(0) // no window in force, no timer
	s := budget.DefaultSettings()
	s.Bottles = map[string]budget.Defaults{}
	s.Budget = budget.Limits{"claude": mustSet(t, "1000/day")}
	if _, err := r.core.SetSettings(s); err != nil {
		t.Fatal(err)
	}
	if g := r.global("claude"); g.Used != 60 || g.Window != "day" {
		t.Errorf("global day after the reload: used %d window %q, want today's 60", g.Used, g.Window)
	}
	r.wantTimers(1)

	// Tokyo's day began at 15:00 UTC the day before: yesterday's report
	// at 23:00 UTC is today there, and the day ends at 15:00 UTC.
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Fatal(err)
	}
	s2 := *s
	s2.Timezone = tokyo
	if _, err := r.core.SetSettings(&s2); err != nil {
		t.Fatal(err)
	}
	if g := r.global("claude"); g.Used != 90 || !g.ResetsAt.Equal(noon.Add(3*time.Hour)) {
		t.Errorf("global day in Tokyo: used %d resets %s, want 90 and 15:00 UTC", g.Used, g.ResetsAt)
	}
	r.wantTimers(1) // moved to 15:00 UTC, not a second one
	r.set(noon.Add(3 * time.Hour))
	if g := r.global("claude"); g.Used != 0 || !g.ResetsAt.Equal(noon.Add(27*time.Hour)) {
		t.Errorf("global day in Tokyo after 15:00 UTC: used %d resets %s, want 0 and the next day", g.Used, g.ResetsAt)
	}
	r.wantTimers(1)
}

func TestRuntimeLimitBringingAWindowActsOnItsUsage(t *testing.T) {
	r := newResetRig(t, nil, claudeReport("t1", "b", 40, noon.Add(-time.Hour)))
	r.register("b", "1000")
	if _, err := r.core.SetLimits(context.Background(), "bottle", "b", budget.Limits{"claude": mustSet(t, "30/day")}); err != nil {
		t.Fatal(err)
	}
	r.waitState("b", budget.CutOff)
	if b := r.bottle("b"); !strings.Contains(b.StateReason, "exhausted for the day: 40 of 30") {
		t.Errorf("reason %q, want the day's crossing", b.StateReason)
	}
	r.set(noon.Add(12 * time.Hour))
	r.waitState("b", budget.Active)
}

func TestRollingWindowRestoresAsUsageAgesOut(t *testing.T) {
	r := newResetRig(t, nil)
	r.register("r", "100/1h")
	r.ingest("1", "r", 100)
	r.waitState("r", budget.CutOff)
	// 1h in 1-minute buckets: noon's bucket leaves at 13:01.
	r.wantTimers(1)
	r.set(noon.Add(60 * time.Minute))
	if b := r.bottle("r"); b.State != budget.CutOff {
		t.Errorf("at 13:00 the bottle is %s, want still cut off", b.State)
	}
	r.set(noon.Add(61 * time.Minute))
	r.waitState("r", budget.Active)
}

// global is the status's global verdict for a provider.
func (r *resetRig) global(provider string) budget.Verdict {
	r.t.Helper()
	var st api.Status
	if err := r.core.Status(context.Background(), &st); err != nil {
		r.t.Fatal(err)
	}
	for _, v := range st.Global {
		if v.Provider == provider {
			return v
		}
	}
	r.t.Fatalf("no global verdict for %s in %+v", provider, st.Global)
	return budget.Verdict{}
}

func mustSet(t *testing.T, s string) budget.LimitSet {
	t.Helper()
	set, err := budget.ParseLimitSet(s)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func TestWindowResetLiftsABudgetPause(t *testing.T) {
	r := newResetRig(t, nil)
	if _, err := r.core.Register(context.Background(), "p", api.BottleRequest{Agent: "a", Shutdown: "pause",
		Budget: budget.Limits{"claude": mustSet(t, "100/day")}}); err != nil {
		t.Fatal(err)
	}
	r.ingest("1", "p", 100)
	r.waitState("p", budget.Paused)
	r.set(noon.Add(12 * time.Hour))
	r.waitState("p", budget.Active)
}

// TestWindowLoadRacesIngest: a limit that brings a new window while
// reports pour in counts each report in the window exactly once — none
// both read from the ledger and recorded, none in neither.
func TestWindowLoadRacesIngest(t *testing.T) {
	r := newResetRig(t, nil)
	r.register("b", "1G")
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 8)
	for w := range 8 {
		go func() {
			for i := 0; ctx.Err() == nil; i++ {
				rep := claudeReport(fmt.Sprintf("w%d-%d", w, i), "b", 1, r.clk.Now())
				if _, err := r.core.Ingest(context.Background(), []budget.Report{rep}, nil); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	eventually(t, "reports flowing", func() bool { return r.bottle("b").Usage["claude"] > 100 })
	if _, err := r.core.SetLimits(context.Background(), "bottle", "b", budget.Limits{"claude": mustSet(t, "1G/day")}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "more reports after the load", func() bool { return r.bottle("b").Usage["claude"] > 2000 })
	stop()
	for range 8 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	b := r.bottle("b")
	if len(b.Limits) != 1 || b.Limits[0].Window != "day" {
		t.Fatalf("limits %d, want the day's", len(b.Limits))
	}
	if got := b.Limits[0].Used; got != b.Usage["claude"] {
		t.Errorf("the day window holds %d tokens; want every one of the %d reported today, once", got, b.Usage["claude"])
	}
}
