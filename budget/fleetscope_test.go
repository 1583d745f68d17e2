package budget_test

import (
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
)

var fleetScope = budget.Scope{Kind: budget.ScopeFleet, ID: "-"}

// fleetWorld is the forest with a fleet limit of claude, this host's
// usage and holds, a read of Postgres (others: the other hosts' shipped
// usage in the window; ownShipped: what this host had shipped) and a
// lease; known false leaves Postgres unread.
type fleetCase struct {
	limit              budget.LimitSet
	usage, holds       []use
	known              bool
	others, ownShipped int64
	lease              budget.FleetLease
	failOpen           bool
}

func fleetWorld(t *testing.T, prec budget.Precedence, global budget.Limits, fc fleetCase) *budget.Book {
	t.Helper()
	s := settings(prec, global)
	s.Fleet = &budget.Fleet{Budget: budget.Limits{"claude": fc.limit}, FailOpen: fc.failOpen}
	b := heldWorld(t, s, forest(), fc.usage, fc.holds)
	if fc.known {
		var ws []budget.FleetWindowUse
		for _, l := range fc.limit {
			ws = append(ws, budget.FleetWindowUse{Window: l.Window, Used: fc.others + fc.ownShipped})
		}
		b.SetFleetKnown("claude", budget.FleetKnown{Windows: ws, OwnShipped: fc.ownShipped})
	}
	b.SetFleetLease("claude", fc.lease)
	return b
}

func TestFleetVerdict(t *testing.T) {
	live := func(ceiling int64) budget.FleetLease { return budget.FleetLease{Ceiling: ceiling, Live: true} }
	tests := []struct {
		name                   string
		prec                   budget.Precedence
		global                 budget.Limits
		fc                     fleetCase
		bottle, agent          string
		wantAllowed            bool
		wantScope              budget.Scope
		wantUsed, wantRemain   int64
		wantReason             string // a fragment; "" = none
		wantLimit, wantHeldOut int64
	}{
		{"the lease bounds below a bottle's own larger budget, under nearest", budget.Nearest, nil,
			fleetCase{limit: budget.Lifetime(10_000), usage: []use{{"loner", "impl", "claude", 100}}, known: true, others: 2000, lease: live(400)},
			"loner", "impl", true, fleetScope, 2100, 300, "", 10_000, 0},
		{"the fleet's room as known bounds when smaller than the lease", budget.Nearest, nil,
			fleetCase{limit: budget.Lifetime(2500), usage: []use{{"loner", "impl", "claude", 100}}, known: true, others: 2000, lease: live(5000)},
			"loner", "impl", true, fleetScope, 2100, 400, "", 2500, 0},
		{"holds count against the lease", budget.Nearest, nil,
			fleetCase{limit: budget.Lifetime(10_000), usage: []use{{"loner", "impl", "claude", 100}}, holds: []use{{"loner", "impl", "claude", 250}}, known: true, lease: live(400)},
			"loner", "impl", true, fleetScope, 100, 50, "", 10_000, 250},
		{"a nearer budget with less room governs", budget.Nearest, nil,
			fleetCase{limit: budget.Lifetime(10_000), usage: []use{{"leaf", "impl", "claude", 60}}, known: true, lease: live(5000)},
			"leaf", "impl", true, budget.Scope{Kind: budget.ScopeAgent, ID: "leaf/impl"}, 60, 40, "", 100, 0},
		{"an exhausted local budget governs first", budget.Nearest, nil,
			fleetCase{limit: budget.Lifetime(10_000), usage: []use{{"leaf", "impl", "claude", 100}}, known: true, lease: live(100)},
			"leaf", "impl", false, budget.Scope{Kind: budget.ScopeAgent, ID: "leaf/impl"}, 100, 0, "agent budget leaf/impl exhausted", 100, 0},
		{"the fleet exhausted as known denies", budget.Nearest, nil,
			fleetCase{limit: budget.Lifetime(2000), usage: []use{{"loner", "impl", "claude", 100}}, known: true, others: 1900, lease: live(5000)},
			"loner", "impl", false, fleetScope, 2000, 0, "fleet budget exhausted: 2000 of 2000 claude tokens used", 2000, 0},
		{"shipped usage is not counted twice", budget.Nearest, nil,
			fleetCase{limit: budget.Lifetime(2000), usage: []use{{"loner", "impl", "claude", 1000}}, known: true, others: 500, ownShipped: 800, lease: live(1500)},
			"loner", "impl", true, fleetScope, 1500, 500, "", 2000, 0},
		{"no lease denies, naming the fleet", budget.Nearest, nil,
			fleetCase{limit: budget.Lifetime(10_000), known: true},
			"loner", "impl", false, fleetScope, 0, 0, "fleet budget: this host holds no lease of the fleet's claude budget", 10_000, 0},
		{"a spent lease denies", budget.Nearest, nil,
			fleetCase{limit: budget.Lifetime(10_000), usage: []use{{"loner", "impl", "claude", 400}}, known: true, lease: live(400)},
			"loner", "impl", false, fleetScope, 400, 0, "spent its lease of the fleet's claude budget (400 tokens used, lease ceiling 400)", 10_000, 0},
		{"an expired lease denies", budget.Nearest, nil,
			fleetCase{limit: budget.Lifetime(10_000), known: true, lease: budget.FleetLease{Ceiling: 900}},
			"loner", "impl", false, fleetScope, 0, 0, "lease of the fleet's claude budget has expired", 10_000, 0},
		{"before Postgres is read only the lease bounds", budget.Nearest, nil,
			fleetCase{limit: budget.Lifetime(10), usage: []use{{"loner", "impl", "claude", 100}}, lease: live(300)},
			"loner", "impl", true, fleetScope, 100, 200, "", 10, 0},
		{"strict: the global budget's less room governs", budget.Strict, budget.Limits{"claude": budget.Lifetime(150)},
			fleetCase{limit: budget.Lifetime(10_000), usage: []use{{"loner", "impl", "claude", 100}}, known: true, lease: live(5000)},
			"loner", "impl", true, budget.Scope{Kind: budget.ScopeGlobal, ID: "-"}, 100, 50, "", 150, 0},
		{"an unlimited bottle is bounded by the fleet", budget.Nearest, nil,
			fleetCase{limit: budget.Lifetime(10_000), known: true, lease: live(70)},
			"ghost", "", true, fleetScope, 0, 70, "", 10_000, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := fleetWorld(t, tt.prec, tt.global, tt.fc)
			v := b.Verdict(tt.bottle, tt.agent, "claude", 0)
			if v.Allowed != tt.wantAllowed || v.Scope != tt.wantScope || v.Used != tt.wantUsed || v.Remaining != tt.wantRemain || v.Limit != tt.wantLimit || v.Held != tt.wantHeldOut {
				t.Errorf("got allowed %v at %+v used %d remaining %d limit %d held %d; want %v at %+v used %d remaining %d limit %d held %d",
					v.Allowed, v.Scope, v.Used, v.Remaining, v.Limit, v.Held, tt.wantAllowed, tt.wantScope, tt.wantUsed, tt.wantRemain, tt.wantLimit, tt.wantHeldOut)
			}
			if v.Unlimited {
				t.Errorf("verdict unlimited under a fleet limit: %+v", v)
			}
			if (tt.wantReason == "") != (v.Reason == "") || !strings.Contains(v.Reason, tt.wantReason) {
				t.Errorf("reason %q, want one containing %q", v.Reason, tt.wantReason)
			}
		})
	}
}

func TestFleetUnreachable(t *testing.T) {
	fc := fleetCase{limit: budget.Lifetime(10_000), usage: []use{{"loner", "impl", "claude", 100}}, known: true,
		lease: budget.FleetLease{Ceiling: 300, Live: true}}
	t.Run("fail closed: the lease's rest, then a denial naming Postgres", func(t *testing.T) {
		b := fleetWorld(t, budget.Nearest, nil, fc)
		if changed := b.SetFleetReachable(false); changed {
			t.Error("SetFleetReachable(false) reports a change of scopes without fail_open")
		}
		if v := b.Verdict("loner", "impl", "claude", 0); !v.Allowed || v.Remaining != 200 {
			t.Fatalf("with a live lease: allowed %v remaining %d, want true 200", v.Allowed, v.Remaining)
		}
		b.SetFleetLease("claude", budget.FleetLease{Ceiling: 300}) // the local deadline passed
		v := b.Verdict("loner", "impl", "claude", 0)
		if v.Allowed || v.Scope != fleetScope || !strings.Contains(v.Reason, "Postgres is unreachable: denying until it is back") {
			t.Errorf("after the deadline: %+v, want a fleet denial naming Postgres", v)
		}
	})
	t.Run("fail open: the local scopes alone decide", func(t *testing.T) {
		fc := fc
		fc.failOpen, fc.lease = true, budget.FleetLease{}
		b := fleetWorld(t, budget.Nearest, nil, fc)
		if v := b.Verdict("loner", "impl", "claude", 0); v.Allowed {
			t.Fatalf("reachable, no lease, fail_open: allowed %+v; fail_open applies only while Postgres is unreachable", v)
		}
		if changed := b.SetFleetReachable(false); !changed {
			t.Error("SetFleetReachable(false) under fail_open reports no change of scopes")
		}
		v := b.Verdict("loner", "impl", "claude", 0)
		if !v.Allowed || !v.Unlimited || v.Scope.Kind != "none" {
			t.Errorf("unreachable, fail_open, no local limit: %+v, want unlimited", v)
		}
		if v := b.Verdict("leaf", "impl", "claude", 0); !v.Allowed || v.Scope.Kind != budget.ScopeAgent {
			t.Errorf("unreachable, fail_open: %+v, want the agent budget", v)
		}
		b.SetFleetReachable(true)
		if v := b.Verdict("loner", "impl", "claude", 0); v.Allowed || v.Scope != fleetScope {
			t.Errorf("reachable again: %+v, want the fleet's denial", v)
		}
	})
}

func TestFleetGrant(t *testing.T) {
	b := fleetWorld(t, budget.Nearest, nil, fleetCase{limit: budget.Lifetime(10_000), usage: []use{{"loner", "impl", "claude", 100}},
		known: true, lease: budget.FleetLease{Ceiling: 1100, Live: true}})
	got, v := b.Grant("loner", "impl", "claude", 600)
	if got != 600 || v.Scope != fleetScope {
		t.Fatalf("first grant %d at %+v, want 600 at the fleet", got, v.Scope)
	}
	b.Hold("loner", "impl", "claude", got)
	got, v = b.Grant("loner", "impl", "claude", 600)
	if got != 400 || !strings.Contains(v.Reason, "only 400 of the 600 claude tokens asked are left in the fleet budget") {
		t.Errorf("second grant %d (%q), want the 400 the lease leaves", got, v.Reason)
	}
}

func TestFleetWindows(t *testing.T) {
	month := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	set, err := budget.ParseLimitSet("1000/day+50000/month")
	if err != nil {
		t.Fatal(err)
	}
	s := settings(budget.Nearest, nil)
	s.Fleet = &budget.Fleet{Budget: budget.Limits{"claude": set}}
	b := heldWorld(t, s, forest(), []use{{"loner", "impl", "claude", 100}}, nil)
	b.SetFleetLease("claude", budget.FleetLease{Ceiling: 100_000, Live: true})
	b.SetFleetKnown("claude", budget.FleetKnown{Windows: []budget.FleetWindowUse{
		{Window: budget.DayWindow, Used: 500, ResetsAt: month.AddDate(0, 0, 7)},
		{Window: budget.MonthWindow, Used: 49_700, ResetsAt: month.AddDate(0, 1, 0)},
	}})
	v := b.Verdict("loner", "impl", "claude", 0)
	if v.Window != "month" || v.Remaining != 200 || !v.ResetsAt.Equal(month.AddDate(0, 1, 0)) {
		t.Errorf("verdict window %s remaining %d resets %s, want month 200 %s", v.Window, v.Remaining, v.ResetsAt, month.AddDate(0, 1, 0))
	}
	uses := b.LimitUses("loner", "impl", "claude")
	if len(uses) != 2 || uses[0].Window != "day" || uses[0].Used != 600 || uses[1].Used != 49_800 {
		t.Errorf("limit uses %+v, want the fleet's day (600) and month (49800)", uses)
	}
}

func TestFleetCrossing(t *testing.T) {
	s := settings(budget.Nearest, nil)
	s.Shutdown = budget.Freeze
	s.Fleet = &budget.Fleet{Budget: budget.Limits{"claude": budget.Lifetime(1000)}}
	b := heldWorld(t, s, forest(), nil, nil)
	b.SetFleetLease("claude", budget.FleetLease{Ceiling: 5000, Live: true})
	if b.SetFleetKnown("claude", budget.FleetKnown{Windows: []budget.FleetWindowUse{{Used: 500}}}) {
		t.Error("a read below the warn threshold reports a change")
	}
	events := b.Record(budget.Report{Bottle: "leaf", Agent: "impl", Provider: "claude", Counted: 50})
	if len(events) != 0 {
		t.Fatalf("50 tokens under every limit: events %+v", events)
	}
	events = b.Record(budget.Report{Bottle: "loner", Agent: "impl", Provider: "claude", Counted: 300})
	if len(events) != 1 || events[0].Kind != budget.EventWarn || events[0].Scope != fleetScope {
		t.Fatalf("to 850 of 1000: events %+v, want the fleet's warning", events)
	}
	events = b.Record(budget.Report{Bottle: "loner", Agent: "impl", Provider: "claude", Counted: 150})
	if len(events) != 1 || events[0].Kind != budget.EventCrossed || events[0].Scope != fleetScope {
		t.Fatalf("to 1000 of 1000: events %+v, want the fleet's crossing", events)
	}
	want := []budget.Target{{Slug: "leaf", Policy: budget.Freeze}, {Slug: "loner", Policy: budget.Freeze}, {Slug: "mid", Policy: budget.Freeze}, {Slug: "root", Policy: budget.Freeze}}
	if got := events[0].Targets; len(got) != len(want) {
		t.Fatalf("targets %+v, want every bottle: %+v", got, want)
	} else {
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("target %d: %+v, want %+v", i, got[i], want[i])
			}
		}
	}
	if !strings.Contains(events[0].Reason, "fleet budget exhausted") {
		t.Errorf("reason %q, want the fleet named", events[0].Reason)
	}
}

func TestFleetReadActs(t *testing.T) {
	s := settings(budget.Nearest, nil)
	s.Fleet = &budget.Fleet{Budget: budget.Limits{"claude": budget.Lifetime(1000)}}
	b := heldWorld(t, s, forest(), []use{{"loner", "impl", "claude", 100}}, nil)
	b.SetFleetLease("claude", budget.FleetLease{Ceiling: 5000, Live: true})
	b.SetFleetKnown("claude", budget.FleetKnown{Windows: []budget.FleetWindowUse{{Used: 100}}})
	if events := b.Crossings(b.Slugs(), nil); len(events) != 0 {
		t.Fatalf("fleet at 200 of 1000: crossings %+v", events)
	}
	if !b.SetFleetKnown("claude", budget.FleetKnown{Windows: []budget.FleetWindowUse{{Used: 950}}}) {
		t.Fatal("a read that exhausts the fleet reports no change")
	}
	events := b.Crossings(b.Slugs(), nil)
	if len(events) != 1 || events[0].Scope != fleetScope || len(events[0].Targets) != 4 {
		t.Fatalf("fleet at 1050 of 1000: crossings %+v, want one fleet crossing over the 4 bottles", events)
	}
	for _, slug := range b.Slugs() {
		b.SetState(slug, budget.CutOff, events[0].Reason, false)
	}
	if got := b.Restorable(b.Slugs()); len(got) != 0 {
		t.Errorf("restorable while the fleet is exhausted: %v", got)
	}
	if !b.SetFleetKnown("claude", budget.FleetKnown{Windows: []budget.FleetWindowUse{{Used: 0}}}) {
		t.Fatal("a read of a new period reports no change")
	}
	if got := b.Restorable(b.Slugs()); len(got) != 4 {
		t.Errorf("restorable after the fleet's usage fell: %v, want all 4", got)
	}
}

func TestFleetState(t *testing.T) {
	b := fleetWorld(t, budget.Nearest, nil, fleetCase{limit: budget.Lifetime(10_000), usage: []use{{"loner", "impl", "claude", 1000}},
		holds: []use{{"loner", "impl", "claude", 50}}, known: true, others: 3000, ownShipped: 900, lease: budget.FleetLease{Ceiling: 1500, Live: true}})
	st, ok := b.FleetState("claude")
	want := budget.FleetState{Provider: "claude", Known: true, Limit: 10_000, Window: "life", Used: 4000, Unshipped: 100, Held: 50,
		Ceiling: 1500, LeaseLive: true, LeaseRoom: 450, Remaining: 450}
	if !ok || st != want {
		t.Errorf("state %+v, want %+v", st, want)
	}
	if _, ok := b.FleetState("codex"); ok {
		t.Error("a provider the fleet does not limit has a fleet state")
	}
	if got := b.Providers(); len(got) != 1 || got[0] != "claude" {
		t.Errorf("providers %v, want claude", got)
	}
}

func TestFleetLeaseShort(t *testing.T) {
	live := budget.FleetLease{Ceiling: 300, Live: true}
	tests := []struct {
		name string
		fc   fleetCase
		n    int64
		want bool
	}{
		{"the lease covers it", fleetCase{limit: budget.Lifetime(10_000), usage: []use{{"loner", "impl", "claude", 100}}, known: true, lease: live}, 200, false},
		{"the lease is short and the fleet has room", fleetCase{limit: budget.Lifetime(10_000), usage: []use{{"loner", "impl", "claude", 100}}, known: true, lease: live}, 201, true},
		{"no lease, Postgres not read yet", fleetCase{limit: budget.Lifetime(10_000)}, 1, true},
		{"the fleet is as short as the lease", fleetCase{limit: budget.Lifetime(1000), usage: []use{{"loner", "impl", "claude", 100}}, known: true, others: 700, lease: live}, 201, false},
		{"the fleet is exhausted", fleetCase{limit: budget.Lifetime(1000), known: true, others: 1000}, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := fleetWorld(t, budget.Nearest, nil, tt.fc)
			if got := b.FleetLeaseShort("claude", tt.n); got != tt.want {
				t.Errorf("FleetLeaseShort(%d) = %v, want %v", tt.n, got, tt.want)
			}
		})
	}
	b := fleetWorld(t, budget.Nearest, nil, fleetCase{limit: budget.Lifetime(10_000), known: true})
	b.SetFleetReachable(false)
	if b.FleetLeaseShort("claude", 1) {
		t.Error("short while Postgres is unreachable: no lease can come, nothing should wait for one")
	}
	if b.FleetLeaseShort("codex", 1) {
		t.Error("short for a provider the fleet does not limit")
	}
}
