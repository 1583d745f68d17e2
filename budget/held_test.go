package budget_test

import (
	"strings"
	"testing"

	"github.com/bot-bottle/bottlecap/budget"
)

// hold is one allowance's hold: (bottle, agent, provider, tokens).
type hold = use

// heldWorld is world with holds on top of the usage.
func heldWorld(t *testing.T, s *budget.Settings, bottles []budget.Bottle, usage, holds []use) *budget.Book {
	t.Helper()
	b := world(t, s, bottles, usage...)
	for _, h := range holds {
		b.Hold(h.bottle, h.agent, h.provider, h.tokens)
	}
	return b
}

func TestGrant(t *testing.T) {
	tests := []struct {
		name                    string
		prec                    budget.Precedence
		global                  budget.Limits
		usage, holds            []use
		bottle, agent, provider string
		asked                   int64
		wantGranted             int64
		wantScope               budget.Scope
		wantHeld, wantRemaining int64
		wantReason              string // a fragment; "" = no reason
	}{
		{"full: room for all of it", budget.Nearest, nil,
			[]use{{"leaf", "rev", "claude", 300}}, nil, "leaf", "rev", "claude", 200,
			200, budget.Scope{Kind: budget.ScopeBottle, ID: "leaf"}, 0, 700, ""},
		{"partial: what used and held leave", budget.Nearest, nil,
			[]use{{"leaf", "rev", "claude", 300}}, []hold{{"leaf", "rev", "claude", 600}}, "leaf", "rev", "claude", 200,
			100, budget.Scope{Kind: budget.ScopeBottle, ID: "leaf"}, 600, 100, "only 100 of the 200 claude tokens asked are left in the bottle budget leaf: 300 of 1000 used, 600 held"},
		{"zero: everything left is held", budget.Nearest, nil,
			nil, []hold{{"leaf", "rev", "claude", 1000}}, "leaf", "rev", "claude", 1,
			0, budget.Scope{Kind: budget.ScopeBottle, ID: "leaf"}, 1000, 0, "only 0 of the 1 claude tokens asked"},
		{"zero: exhausted says so", budget.Nearest, nil,
			[]use{{"leaf", "rev", "claude", 1000}}, nil, "leaf", "rev", "claude", 1,
			0, budget.Scope{Kind: budget.ScopeBottle, ID: "leaf"}, 0, 0, "bottle budget leaf exhausted"},
		{"unlimited: all of it", budget.Nearest, nil,
			[]use{{"loner", "impl", "claude", 5}}, []hold{{"loner", "impl", "claude", 7}}, "loner", "impl", "claude", 1_000_000,
			1_000_000, budget.Scope{Kind: "none"}, 7, 0, ""},
		{"agent scope: the agent's own holds", budget.Nearest, nil,
			[]use{{"leaf", "impl", "claude", 40}}, []hold{{"leaf", "impl", "claude", 50}, {"leaf", "rev", "claude", 500}}, "leaf", "impl", "claude", 100,
			10, budget.Scope{Kind: budget.ScopeAgent, ID: "leaf/impl"}, 50, 10, "agent budget leaf/impl"},
		{"nearest: a child's hold takes from its parent's budget", budget.Nearest, nil,
			nil, []hold{{"leaf", "rev", "claude", 450}}, "mid", "impl", "claude", 100,
			50, budget.Scope{Kind: budget.ScopeParent, ID: "root"}, 450, 50, "parent budget root"},
		{"nearest: the global budget does not bound a bottle with its own", budget.Nearest, budget.Limits{"claude": budget.Lifetime(10)},
			nil, nil, "leaf", "rev", "claude", 500,
			500, budget.Scope{Kind: budget.ScopeBottle, ID: "leaf"}, 0, 1000, ""},
		{"strict: the tightest scope bounds it", budget.Strict, budget.Limits{"claude": budget.Lifetime(10)},
			nil, []hold{{"loner", "impl", "claude", 4}}, "leaf", "rev", "claude", 500,
			6, budget.Scope{Kind: budget.ScopeGlobal, ID: "-"}, 4, 6, "global budget"},
		{"strict: held counts in choosing the tightest", budget.Strict, budget.Limits{"claude": budget.Lifetime(1000)},
			[]use{{"loner", "impl", "claude", 400}}, []hold{{"loner", "impl", "claude", 300}}, "root", "impl", "claude", 500,
			300, budget.Scope{Kind: budget.ScopeGlobal, ID: "-"}, 300, 300, "global budget"},
		{"unknown bottle: the global budget", budget.Nearest, budget.Limits{"claude": budget.Lifetime(100)},
			[]use{{"ghost", "", "claude", 30}}, []hold{{"ghost", "", "claude", 30}}, "ghost", "", "claude", 100,
			40, budget.Scope{Kind: budget.ScopeGlobal, ID: "-"}, 30, 40, "global budget"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := heldWorld(t, settings(tt.prec, tt.global), forest(), tt.usage, tt.holds)
			got, v := b.Grant(tt.bottle, tt.agent, tt.provider, tt.asked)
			if got != tt.wantGranted || v.Scope != tt.wantScope || v.Held != tt.wantHeld || v.Remaining != tt.wantRemaining {
				t.Errorf("got %d granted at %+v held %d remaining %d; want %d at %+v held %d remaining %d",
					got, v.Scope, v.Held, v.Remaining, tt.wantGranted, tt.wantScope, tt.wantHeld, tt.wantRemaining)
			}
			if (tt.wantReason == "") != (v.Reason == "") || !strings.Contains(v.Reason, tt.wantReason) {
				t.Errorf("reason %q, want one containing %q", v.Reason, tt.wantReason)
			}
		})
	}
}

// TestGrantNothingWhileBlocked: a cut off, frozen, killed or pending
// bottle is granted nothing, whatever its budget says.
func TestGrantNothingWhileBlocked(t *testing.T) {
	for _, st := range []budget.State{budget.CutOff, budget.Frozen, budget.Killed, budget.Pending} {
		t.Run(string(st), func(t *testing.T) {
			b := world(t, nil, forest())
			b.SetState("leaf", st, "operator", true)
			if got, v := b.Grant("leaf", "rev", "claude", 10); got != 0 || v.Allowed || !strings.Contains(v.Reason, string(st)) {
				t.Errorf("got %d granted, verdict %+v; want 0, denied naming %s", got, v, st)
			}
		})
	}
}

// TestHeldDoesNotExhaust: holds leave less room but do not make a budget
// exhausted; the estimate check reads the room they leave.
func TestHeldDoesNotExhaust(t *testing.T) {
	b := heldWorld(t, nil, forest(), []use{{"leaf", "rev", "claude", 400}}, []hold{{"leaf", "rev", "claude", 600}})
	v := b.Verdict("leaf", "rev", "claude", 0)
	if !v.Allowed || v.Used != 400 || v.Held != 600 || v.Remaining != 0 {
		t.Errorf("got %+v; want allowed, 400 used, 600 held, 0 remaining", v)
	}
	if v := b.Verdict("leaf", "rev", "claude", 1); v.Allowed || !strings.Contains(v.Reason, "600 held") {
		t.Errorf("estimate of 1 with everything held: got %+v, want denied naming what is held", v)
	}
}

// TestHeldFollowsTheForest: a hold counts at the bottle and every
// ancestor, moves with a re-parented bottle, leaves the ancestors of a
// forgotten one, and joins the subtree of a bottle that registers after
// holding.
func TestHeldFollowsTheForest(t *testing.T) {
	b := world(t, nil, forest())
	b.Hold("leaf", "rev", "claude", 70)
	b.Hold("ghost", "", "claude", 5)
	subtree := func(slug string) int64 {
		_, sub, _ := b.Held(slug, "", "claude")
		return sub
	}
	want := func(when string, slug string, n int64) {
		t.Helper()
		if got := subtree(slug); got != n {
			t.Errorf("%s: %s holds %d over its subtree, want %d", when, slug, got, n)
		}
	}
	want("held at leaf", "leaf", 70)
	want("held at leaf", "mid", 70)
	want("held at leaf", "root", 70)
	if _, _, global := b.Held("leaf", "", "claude"); global != 75 {
		t.Errorf("host-wide held %d, want 75 (the unknown bottle's too)", global)
	}

	mustRegister(t, b, budget.Bottle{Slug: "leaf", Agent: "impl", Parent: "loner"})
	want("leaf moved under loner", "loner", 70)
	want("leaf moved under loner", "root", 0)
	want("leaf moved under loner", "mid", 0)

	mustRegister(t, b, budget.Bottle{Slug: "ghost", Parent: "root"})
	want("ghost registered under root", "root", 5)

	b.Forget("leaf")
	want("leaf forgotten", "loner", 0)
	mustRegister(t, b, budget.Bottle{Slug: "leaf", Parent: "mid"})
	want("leaf back under mid", "root", 75)

	b.Unhold("leaf", "rev", "claude", 100)
	want("leaf's hold given back (more than it held)", "root", 5)
	if a, _, global := b.Held("leaf", "rev", "claude"); a != 0 || global != 5 {
		t.Errorf("after giving back: agent %d, host %d; want 0 and 5 (never below 0)", a, global)
	}
}

// TestHeldSaturates: holds stop at the counters' maximum instead of
// wrapping negative, which would turn a full budget into an open one.
func TestHeldSaturates(t *testing.T) {
	b := world(t, nil, forest())
	b.Hold("leaf", "rev", "claude", budget.MaxCounted)
	b.Hold("leaf", "rev", "claude", budget.MaxCounted)
	if a, sub, global := b.Held("leaf", "rev", "claude"); a != budget.MaxCounted || sub != budget.MaxCounted || global != budget.MaxCounted {
		t.Errorf("got agent %d, subtree %d, host %d; want each at %d", a, sub, global, budget.MaxCounted)
	}
	if got, v := b.Grant("root", "impl", "claude", 1); got != 0 || v.Remaining != 0 {
		t.Errorf("got %d granted, %d remaining; want 0 under a saturated hold", got, v.Remaining)
	}
}

func mustRegister(t *testing.T, b *budget.Book, bt budget.Bottle) {
	t.Helper()
	if err := b.Register(bt); err != nil {
		t.Fatalf("register %s: %v", bt.Slug, err)
	}
}
