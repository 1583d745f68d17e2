package budget_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/bot-bottle/bottlecap/budget"
)

// world builds a book from settings, bottles and (bottle, agent, provider,
// tokens) usage rows, failing the test on any registration error.
func world(t *testing.T, s *budget.Settings, bottles []budget.Bottle, usage ...use) *budget.Book {
	t.Helper()
	if s == nil {
		s = budget.DefaultSettings()
	}
	b := budget.NewBook(s)
	for _, bt := range bottles {
		if err := b.Register(bt); err != nil {
			t.Fatalf("register %s: %v", bt.Slug, err)
		}
	}
	for _, u := range usage {
		b.Add(u.bottle, u.agent, u.provider, u.tokens)
	}
	return b
}

// setRuntime sets runtime limits at a scope, as the daemon does for
// PUT /v1/budgets; a test's change func returns its error.
func setRuntime(b *budget.Book, kind budget.ScopeKind, id string, l budget.Limits) error {
	b.SetRuntime(budget.Scope{Kind: kind, ID: id}, l)
	return nil
}

type use struct {
	bottle, agent, provider string
	tokens                  int64
}

func settings(prec budget.Precedence, global budget.Limits) *budget.Settings {
	s := budget.DefaultSettings()
	s.Precedence = prec
	s.Budget = global
	return s
}

// forest: root (budget 500) → mid (no budget) → leaf (budget 1000, agent
// "impl" limited to 100); plus "loner" with no budget of its own.
func forest() []budget.Bottle {
	return []budget.Bottle{
		{Slug: "root", Agent: "impl", Budget: budget.Limits{"claude": budget.Lifetime(500)}},
		{Slug: "mid", Agent: "impl", Parent: "root"},
		{Slug: "leaf", Agent: "impl", Parent: "mid", Budget: budget.Limits{"claude": budget.Lifetime(1000)},
			AgentBudgets: map[string]budget.Limits{"impl": {"claude": budget.Lifetime(100)}}},
		{Slug: "loner", Agent: "impl"},
	}
}

func TestVerdictScopes(t *testing.T) {
	tests := []struct {
		name                    string
		prec                    budget.Precedence
		global                  budget.Limits
		usage                   []use
		bottle, agent, provider string
		wantScope               budget.Scope
		wantAllowed             bool
		wantUsed, wantLimit     int64
	}{
		{"nearest agent limit governs its agent", budget.Nearest, nil,
			[]use{{"leaf", "impl", "claude", 40}}, "leaf", "impl", "claude",
			budget.Scope{Kind: budget.ScopeAgent, ID: "leaf/impl"}, true, 40, 100},
		{"nearest empty agent means the bottle's agent", budget.Nearest, nil,
			[]use{{"leaf", "impl", "claude", 100}}, "leaf", "", "claude",
			budget.Scope{Kind: budget.ScopeAgent, ID: "leaf/impl"}, false, 100, 100},
		{"nearest other agent falls to the bottle budget", budget.Nearest, nil,
			[]use{{"leaf", "rev", "claude", 300}}, "leaf", "rev", "claude",
			budget.Scope{Kind: budget.ScopeBottle, ID: "leaf"}, true, 300, 1000},
		{"nearest bottle without budget falls to its parent chain", budget.Nearest, nil,
			[]use{{"mid", "impl", "claude", 10}}, "mid", "impl", "claude",
			budget.Scope{Kind: budget.ScopeParent, ID: "root"}, true, 10, 500},
		{"nearest parent budget covers the whole subtree", budget.Nearest, nil,
			[]use{{"leaf", "rev", "claude", 550}}, "mid", "impl", "claude",
			budget.Scope{Kind: budget.ScopeParent, ID: "root"}, false, 550, 500},
		{"nearest parent over budget itself whoever spent", budget.Nearest, nil,
			[]use{{"leaf", "rev", "claude", 550}}, "root", "impl", "claude",
			budget.Scope{Kind: budget.ScopeBottle, ID: "root"}, false, 550, 500},
		{"nearest bottle override outspends global", budget.Nearest, budget.Limits{"claude": budget.Lifetime(200)},
			[]use{{"leaf", "rev", "claude", 300}}, "leaf", "rev", "claude",
			budget.Scope{Kind: budget.ScopeBottle, ID: "leaf"}, true, 300, 1000},
		{"nearest no bottle budget falls to global", budget.Nearest, budget.Limits{"claude": budget.Lifetime(200)},
			[]use{{"loner", "impl", "claude", 200}}, "loner", "impl", "claude",
			budget.Scope{Kind: budget.ScopeGlobal, ID: "-"}, false, 200, 200},
		{"nearest unknown bottle is governed by global", budget.Nearest, budget.Limits{"claude": budget.Lifetime(200)},
			[]use{{"ghost", "", "claude", 20}, {"loner", "impl", "claude", 30}}, "ghost", "", "claude",
			budget.Scope{Kind: budget.ScopeGlobal, ID: "-"}, true, 50, 200},
		{"nearest nothing limits the provider", budget.Nearest, nil,
			[]use{{"loner", "impl", "codex", 7}}, "loner", "impl", "codex",
			budget.Scope{Kind: "none"}, true, 7, 0},
		{"strict global trips under a bottle override", budget.Strict, budget.Limits{"claude": budget.Lifetime(200)},
			[]use{{"leaf", "rev", "claude", 300}}, "leaf", "rev", "claude",
			budget.Scope{Kind: budget.ScopeGlobal, ID: "-"}, false, 300, 200},
		{"strict least room governs when none exhausted", budget.Strict, budget.Limits{"claude": budget.Lifetime(2000)},
			[]use{{"leaf", "rev", "claude", 300}}, "leaf", "rev", "claude",
			budget.Scope{Kind: budget.ScopeParent, ID: "root"}, true, 300, 500},
		{"strict first crossed is the most specific exhausted", budget.Strict, budget.Limits{"claude": budget.Lifetime(200)},
			[]use{{"leaf", "impl", "claude", 120}, {"loner", "impl", "claude", 100}}, "leaf", "impl", "claude",
			budget.Scope{Kind: budget.ScopeAgent, ID: "leaf/impl"}, false, 120, 100},
		{"strict global exhausted denies a bottle with room", budget.Strict, budget.Limits{"claude": budget.Lifetime(200)},
			[]use{{"leaf", "rev", "claude", 50}, {"loner", "impl", "claude", 150}}, "leaf", "rev", "claude",
			budget.Scope{Kind: budget.ScopeGlobal, ID: "-"}, false, 200, 200},
		{"strict parent exhausted by a sibling", budget.Strict, nil,
			[]use{{"leaf", "rev", "claude", 450}, {"mid", "impl", "claude", 60}}, "leaf", "rev", "claude",
			budget.Scope{Kind: budget.ScopeParent, ID: "root"}, false, 510, 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := world(t, settings(tt.prec, tt.global), forest(), tt.usage...)
			v := b.Verdict(tt.bottle, tt.agent, tt.provider, 0)
			if v.Scope != tt.wantScope || v.Allowed != tt.wantAllowed || v.Used != tt.wantUsed || v.Limit != tt.wantLimit {
				t.Errorf("got scope %v allowed %v used %d limit %d, want %v %v %d %d (reason %q)",
					v.Scope, v.Allowed, v.Used, v.Limit, tt.wantScope, tt.wantAllowed, tt.wantUsed, tt.wantLimit, v.Reason)
			}
			if !v.Allowed && !strings.Contains(v.Reason, "exhausted") {
				t.Errorf("got reason %q, want it to name the exhausted budget", v.Reason)
			}
		})
	}
}

func TestVerdictEstimateAndState(t *testing.T) {
	tests := []struct {
		name     string
		state    budget.State
		estimate int64
		want     bool
	}{
		{"active no estimate", budget.Active, 0, true},
		{"active estimate fits", budget.Active, 60, true},
		{"active estimate too large", budget.Active, 61, false},
		{"warned still allowed", budget.Warned, 0, true},
		{"cut off denied", budget.CutOff, 0, false},
		{"frozen denied", budget.Frozen, 0, false},
		{"killed denied", budget.Killed, 0, false},
		{"pending denied", budget.Pending, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := world(t, nil, forest(), use{"leaf", "impl", "claude", 40})
			b.SetState("leaf", tt.state, "operator said so", true)
			v := b.Verdict("leaf", "impl", "claude", tt.estimate)
			if v.Allowed != tt.want {
				t.Errorf("got allowed %v (%q), want %v", v.Allowed, v.Reason, tt.want)
			}
			if v.Remaining != 60 || v.State != tt.state {
				t.Errorf("got remaining %d state %s, want 60 %s", v.Remaining, v.State, tt.state)
			}
		})
	}
}

func TestSettingsDefaultsByNameOverriddenByRegistration(t *testing.T) {
	s := budget.DefaultSettings()
	s.Bottles["dev"] = budget.Defaults{Budget: budget.Limits{"claude": budget.Lifetime(1000)}, Shutdown: budget.Freeze}
	s.Agents["reviewer"] = budget.Defaults{Budget: budget.Limits{"claude": budget.Lifetime(200)}, Shutdown: budget.Kill}
	tests := []struct {
		name       string
		bottle     budget.Bottle
		agent      string
		wantScope  budget.Scope
		wantLimit  int64
		wantPolicy budget.Policy
	}{
		{"bottle name default", budget.Bottle{Slug: "d1", Name: "dev", Agent: "impl"}, "impl",
			budget.Scope{Kind: budget.ScopeBottle, ID: "d1"}, 1000, budget.Freeze},
		{"bottle registration overrides name default", budget.Bottle{Slug: "d1", Name: "dev", Agent: "impl",
			Budget: budget.Limits{"claude": budget.Lifetime(5000)}, Shutdown: budget.Kill}, "impl",
			budget.Scope{Kind: budget.ScopeBottle, ID: "d1"}, 5000, budget.Kill},
		{"agent name default", budget.Bottle{Slug: "r1", Agent: "reviewer"}, "",
			budget.Scope{Kind: budget.ScopeAgent, ID: "r1/reviewer"}, 200, budget.Kill},
		{"agent registration overrides agent default", budget.Bottle{Slug: "r1", Agent: "reviewer",
			AgentBudgets: map[string]budget.Limits{"reviewer": {"claude": budget.Lifetime(50)}}}, "reviewer",
			budget.Scope{Kind: budget.ScopeAgent, ID: "r1/reviewer"}, 50, budget.Kill},
		{"implicit bottle ignores name defaults", budget.Bottle{Slug: "d2", Name: "dev", Implicit: true}, "",
			budget.Scope{Kind: "none"}, 0, budget.Freeze},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := world(t, s, []budget.Bottle{tt.bottle})
			v := b.Verdict(tt.bottle.Slug, tt.agent, "claude", 0)
			if v.Scope != tt.wantScope || v.Limit != tt.wantLimit {
				t.Errorf("got %v limit %d, want %v limit %d", v.Scope, v.Limit, tt.wantScope, tt.wantLimit)
			}
			targets := b.Governed(v.Scope, "claude")
			if tt.wantScope.Kind != "none" && (len(targets) != 1 || targets[0].Policy != tt.wantPolicy) {
				t.Errorf("got targets %v, want one with policy %s", targets, tt.wantPolicy)
			}
		})
	}
}

func TestRegisterRejectsParentCycles(t *testing.T) {
	tests := []struct {
		name   string
		bottle budget.Bottle
	}{
		{"own parent", budget.Bottle{Slug: "root", Parent: "root"}},
		{"grandchild as parent", budget.Bottle{Slug: "root", Parent: "leaf"}},
		{"child as parent", budget.Bottle{Slug: "mid", Parent: "leaf"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := world(t, nil, forest())
			err := b.Register(tt.bottle)
			if !errors.Is(err, budget.ErrConflict) {
				t.Fatalf("got %v, want ErrConflict", err)
			}
			if got, _ := b.Bottle(tt.bottle.Slug); got.Parent == tt.bottle.Parent {
				t.Errorf("got parent %q registered despite the cycle", got.Parent)
			}
		})
	}
}

func TestReparentAndForgetMoveSubtreeUsage(t *testing.T) {
	b := world(t, nil, forest(), use{"leaf", "impl", "claude", 70})
	if _, sub, _ := b.Used("root", "", "claude"); sub != 70 {
		t.Fatalf("got root subtree %d, want 70", sub)
	}
	if err := b.Register(budget.Bottle{Slug: "leaf", Parent: "loner"}); err != nil {
		t.Fatal(err)
	}
	_, rootSub, _ := b.Used("root", "", "claude")
	_, lonerSub, global := b.Used("loner", "", "claude")
	if rootSub != 0 || lonerSub != 70 || global != 70 {
		t.Errorf("after reparent got root %d loner %d global %d, want 0 70 70", rootSub, lonerSub, global)
	}
	b.Forget("leaf")
	_, lonerSub, global = b.Used("loner", "", "claude")
	if lonerSub != 0 || global != 70 {
		t.Errorf("after forget got loner %d global %d, want 0 70", lonerSub, global)
	}
}

func TestRecordCrossings(t *testing.T) {
	tests := []struct {
		name   string
		prec   budget.Precedence
		global budget.Limits
		before []use
		report use
		want   []string // "kind scope provider -> slug:policy,…"
	}{
		{"agent limit crossed acts on its bottle", budget.Nearest, nil,
			[]use{{"leaf", "impl", "claude", 90}}, use{"leaf", "impl", "claude", 10},
			[]string{"crossed agent budget leaf/impl claude -> leaf:cutoff"}},
		{"warn threshold once", budget.Nearest, nil,
			[]use{{"leaf", "impl", "claude", 70}}, use{"leaf", "impl", "claude", 10},
			[]string{"warn agent budget leaf/impl claude -> leaf:cutoff"}},
		{"no event below warn", budget.Nearest, nil,
			nil, use{"leaf", "impl", "claude", 79}, nil},
		{"no event when already exhausted", budget.Nearest, nil,
			[]use{{"leaf", "impl", "claude", 100}}, use{"leaf", "impl", "claude", 10}, nil},
		{"parent crossed by grandchild nearest governs mid and root only", budget.Nearest, nil,
			[]use{{"leaf", "rev", "claude", 450}}, use{"leaf", "rev", "claude", 60},
			[]string{"crossed bottle budget root claude -> mid:cutoff,root:cutoff"}},
		{"parent crossed strict governs the whole subtree", budget.Strict, nil,
			[]use{{"leaf", "rev", "claude", 450}}, use{"leaf", "rev", "claude", 60},
			[]string{"crossed bottle budget root claude -> leaf:cutoff,mid:cutoff,root:cutoff"}},
		{"global crossed nearest spares bottles with their own budget", budget.Nearest, budget.Limits{"claude": budget.Lifetime(100)},
			[]use{{"loner", "impl", "claude", 50}}, use{"loner", "impl", "claude", 50},
			[]string{"crossed global budget claude -> loner:cutoff"}},
		{"global crossed strict acts on every bottle", budget.Strict, budget.Limits{"claude": budget.Lifetime(100)},
			[]use{{"loner", "impl", "claude", 50}}, use{"loner", "impl", "claude", 50},
			[]string{"crossed global budget claude -> leaf:cutoff,loner:cutoff,mid:cutoff,root:cutoff"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := world(t, settings(tt.prec, tt.global), forest(), tt.before...)
			events := b.Record(budget.Report{Bottle: tt.report.bottle, Agent: tt.report.agent,
				Provider: tt.report.provider, Counted: tt.report.tokens})
			var got []string
			for _, e := range events {
				var ts []string
				for _, t := range e.Targets {
					ts = append(ts, t.Slug+":"+string(t.Policy))
				}
				got = append(got, string(e.Kind)+" "+e.Scope.String()+" "+e.Provider+" -> "+strings.Join(ts, ","))
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestZeroLimitCrossedByFirstToken(t *testing.T) {
	b := world(t, nil, []budget.Bottle{{Slug: "z", Budget: budget.Limits{"claude": budget.Lifetime(0)}}})
	if v := b.Verdict("z", "", "claude", 0); v.Allowed {
		t.Errorf("got allowed with a zero limit")
	}
	events := b.Record(budget.Report{Bottle: "z", Provider: "claude", Counted: 1})
	if len(events) != 1 || events[0].Kind != budget.EventCrossed {
		t.Errorf("got %v, want one crossing", events)
	}
}

// eventLines renders events as "kind scope provider -> slug:policy,…".
func eventLines(events []budget.Event) []string {
	var got []string
	for _, e := range events {
		var ts []string
		for _, t := range e.Targets {
			ts = append(ts, t.Slug+":"+string(t.Policy))
		}
		got = append(got, string(e.Kind)+" "+e.Scope.String()+" "+e.Provider+" -> "+strings.Join(ts, ","))
	}
	return got
}

func TestCrossingsLeftByAChange(t *testing.T) {
	all := []string{"leaf", "loner", "mid", "root"}
	tests := []struct {
		name   string
		prec   budget.Precedence
		global budget.Limits
		usage  []use
		change func(b *budget.Book) error
		slugs  []string
		want   []string
	}{
		{"nothing exhausted, nothing to do", budget.Nearest, nil,
			[]use{{"leaf", "impl", "claude", 50}}, nil, all, nil},
		{"agent limit lowered below usage", budget.Nearest, nil,
			[]use{{"leaf", "impl", "claude", 50}},
			func(b *budget.Book) error {
				return setRuntime(b, budget.ScopeAgent, "leaf/impl", budget.Limits{"claude": budget.Lifetime(40)})
			},
			all, []string{"crossed agent budget leaf/impl claude -> leaf:cutoff"}},
		{"parent lowered acts on the bottles it governs only", budget.Nearest, nil,
			[]use{{"leaf", "rev", "claude", 300}},
			func(b *budget.Book) error {
				return setRuntime(b, budget.ScopeBottle, "root", budget.Limits{"claude": budget.Lifetime(200)})
			},
			all, []string{"crossed bottle budget root claude -> mid:cutoff,root:cutoff"}},
		{"only the slugs given are considered", budget.Nearest, nil,
			[]use{{"leaf", "rev", "claude", 300}},
			func(b *budget.Book) error {
				return setRuntime(b, budget.ScopeBottle, "root", budget.Limits{"claude": budget.Lifetime(200)})
			},
			[]string{"mid"}, []string{"crossed bottle budget root claude -> mid:cutoff"}},
		{"global lowered under strict reaches every bottle", budget.Strict, budget.Limits{"claude": budget.Lifetime(1000)},
			[]use{{"loner", "impl", "claude", 300}},
			func(b *budget.Book) error {
				return setRuntime(b, budget.ScopeGlobal, "-", budget.Limits{"claude": budget.Lifetime(100)})
			},
			all, []string{"crossed global budget claude -> leaf:cutoff,loner:cutoff,mid:cutoff,root:cutoff"}},
		{"a new parent exhausted by the newcomer's usage", budget.Nearest, nil,
			[]use{{"loner", "impl", "claude", 600}},
			func(b *budget.Book) error {
				return b.Register(budget.Bottle{Slug: "loner", Agent: "impl", Parent: "mid"})
			},
			all, []string{"crossed bottle budget root claude -> loner:cutoff,mid:cutoff,root:cutoff"}},
		{"lowered to the warn level warns active bottles", budget.Nearest, nil,
			[]use{{"loner", "impl", "claude", 85}},
			func(b *budget.Book) error {
				return setRuntime(b, budget.ScopeBottle, "loner", budget.Limits{"claude": budget.Lifetime(100)})
			},
			all, []string{"warn bottle budget loner claude -> loner:cutoff"}},
		{"a zero limit with nothing used does not act", budget.Nearest, nil, nil,
			func(b *budget.Book) error {
				return setRuntime(b, budget.ScopeBottle, "loner", budget.Limits{"claude": budget.Lifetime(0)})
			},
			all, nil},
		{"blocked bottles are left alone", budget.Nearest, nil,
			[]use{{"leaf", "impl", "claude", 150}},
			func(b *budget.Book) error { b.SetState("leaf", budget.CutOff, "earlier", false); return nil },
			all, nil},
		{"an implicit bottle's explicit budget acts", budget.Nearest, nil,
			[]use{{"stray", "x", "claude", 20}},
			func(b *budget.Book) error {
				if err := b.Register(budget.Bottle{Slug: "stray", Agent: "x", Implicit: true}); err != nil {
					return err
				}
				return setRuntime(b, budget.ScopeBottle, "stray", budget.Limits{"claude": budget.Lifetime(1)})
			},
			[]string{"stray"}, []string{"crossed bottle budget stray claude -> stray:cutoff"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := world(t, settings(tt.prec, tt.global), forest(), tt.usage...)
			if tt.change != nil {
				if err := tt.change(b); err != nil {
					t.Fatal(err)
				}
			}
			if got := eventLines(b.Crossings(tt.slugs, nil)); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestOperatorRestoredBottleIsExemptFromOldExhaustionOnly(t *testing.T) {
	tests := []struct {
		name   string
		usage  int64
		change func(b *budget.Book) error
		want   []string
	}{
		{"already exhausted before the change", 150,
			func(b *budget.Book) error {
				return setRuntime(b, budget.ScopeBottle, "loner", budget.Limits{"claude": budget.Lifetime(120)})
			}, nil},
		{"exhausted by the change itself", 50,
			func(b *budget.Book) error {
				return setRuntime(b, budget.ScopeBottle, "loner", budget.Limits{"claude": budget.Lifetime(40)})
			},
			[]string{"crossed bottle budget loner claude -> loner:cutoff"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := world(t, nil, forest(), use{"loner", "impl", "claude", tt.usage})
			b.SetRuntime(budget.Scope{Kind: budget.ScopeBottle, ID: "loner"}, budget.Limits{"claude": budget.Lifetime(100)})
			b.SetState("loner", budget.Active, "restored by operator", true)
			exempt := b.OperatorExempt([]string{"loner"})
			if err := tt.change(b); err != nil {
				t.Fatal(err)
			}
			if got := eventLines(b.Crossings([]string{"loner"}, exempt)); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRestorable(t *testing.T) {
	tests := []struct {
		name       string
		byOperator bool
		limit      int64
		want       []string
	}{
		{"still exhausted", false, 100, nil},
		{"raised above usage", false, 1000, []string{"loner"}},
		{"an operator's cutoff stays", true, 1000, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := world(t, nil, forest(), use{"loner", "impl", "claude", 150})
			b.SetRuntime(budget.Scope{Kind: budget.ScopeBottle, ID: "loner"}, budget.Limits{"claude": budget.Lifetime(tt.limit)})
			b.SetState("loner", budget.CutOff, "cut", tt.byOperator)
			if got := b.Restorable([]string{"leaf", "loner"}); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCountedAppliesWeights(t *testing.T) {
	u := budget.Usage{Input: 100, CacheRead: 1000, CacheWrite: 10, Output: 50, Reasoning: 20}
	tests := []struct {
		name string
		w    budget.Weights
		want int64
	}{
		{"zero weights count once", budget.Weights{}, 1160},
		{"unit weights", budget.UnitWeights, 1160},
		{"cheap cache reads", budget.Weights{Input: 1, CacheRead: 0.1, CacheWrite: 1, Output: 1}, 260},
		{"expensive output rounds half up", budget.Weights{Input: 1, CacheRead: 1, CacheWrite: 1.25, Output: 4}, 1313},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := u.Counted(tt.w); got != tt.want {
				t.Errorf("got %d, want %d", got, tt.want)
			}
		})
	}
}
