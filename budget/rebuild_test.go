package budget_test

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/bot-bottle/bottlecap/budget"
)

// used is one Book.Used reading a rebuilt book must give.
type used struct {
	bottle, agent, provider string
	agentUsed, subtree, all int64
}

// limited is the limit and scope the verdict of (bottle, agent, claude)
// must name.
type limited struct {
	bottle, agent string
	limit         int64
	scope         budget.ScopeKind
}

func TestRebuild(t *testing.T) {
	settings := budget.DefaultSettings()
	settings.Budget = budget.Limits{"claude": budget.Lifetime(1000), "codex": budget.Lifetime(500)}
	tests := []struct {
		name    string
		bottles []budget.Bottle
		budgets []budget.ScopeBudget
		totals  []budget.Total
		// want
		global   budget.Limits
		slugs    []string
		used     []used
		limited  []limited
		errClass error
		errNames []string
	}{
		{
			name:   "no rows",
			global: budget.Limits{"claude": budget.Lifetime(1000), "codex": budget.Lifetime(500)},
			used:   []used{{"b1", "a", "claude", 0, 0, 0}},
		},
		{
			name: "a child listed before its parent counts toward the parent's subtree",
			bottles: []budget.Bottle{
				{Slug: "a-child", Parent: "z-parent", Agent: "worker"},
				{Slug: "z-parent", Agent: "lead"},
			},
			totals: []budget.Total{
				{Bottle: "a-child", Agent: "worker", Provider: "claude", Counted: 30},
				{Bottle: "z-parent", Agent: "lead", Provider: "claude", Counted: 5},
			},
			global: budget.Limits{"claude": budget.Lifetime(1000), "codex": budget.Lifetime(500)},
			slugs:  []string{"a-child", "z-parent"},
			used: []used{
				{"a-child", "worker", "claude", 30, 30, 35},
				{"z-parent", "lead", "claude", 5, 35, 35},
			},
		},
		{
			name: "the global row overrides the settings provider by provider",
			budgets: []budget.ScopeBudget{
				{Scope: budget.ScopeGlobal, ID: "-", Limits: budget.Limits{"claude": budget.Lifetime(200), "gemini": budget.Lifetime(7)}},
			},
			global: budget.Limits{"claude": budget.Lifetime(200), "codex": budget.Lifetime(500), "gemini": budget.Lifetime(7)},
		},
		{
			name: "bottle and agent rows are runtime limits, over the bottle row's registration",
			bottles: []budget.Bottle{{Slug: "b1", Agent: "a",
				Budget: budget.Limits{"claude": budget.Lifetime(300)}, AgentBudgets: map[string]budget.Limits{"a": {"claude": budget.Lifetime(40)}}}},
			budgets: []budget.ScopeBudget{
				{Scope: budget.ScopeBottle, ID: "b1", Limits: budget.Limits{"claude": budget.Lifetime(1)}},
				{Scope: budget.ScopeAgent, ID: "b1/a", Limits: budget.Limits{"claude": budget.Lifetime(2)}},
				{Scope: budget.ScopeAgent, ID: "b1/other", Limits: budget.Limits{"claude": budget.Lifetime(3)}},
			},
			global:  budget.Limits{"claude": budget.Lifetime(1000), "codex": budget.Lifetime(500)},
			slugs:   []string{"b1"},
			limited: []limited{{"b1", "a", 2, budget.ScopeAgent}, {"b1", "other", 3, budget.ScopeAgent}, {"b1", "third", 1, budget.ScopeBottle}},
		},
		{
			name:   "totals of a bottle the ledger no longer holds still count on the host",
			totals: []budget.Total{{Bottle: "gone", Agent: "a", Provider: "codex", Counted: 70}},
			global: budget.Limits{"claude": budget.Lifetime(1000), "codex": budget.Lifetime(500)},
			used:   []used{{"gone", "a", "codex", 70, 0, 70}, {"", "", "codex", 0, 0, 70}},
		},
		{
			name: "a parent cycle is refused by name and the other bottles are kept",
			bottles: []budget.Bottle{
				{Slug: "p", Parent: "q"},
				{Slug: "q", Parent: "p"},
				{Slug: "solo"},
			},
			totals:   []budget.Total{{Bottle: "solo", Provider: "claude", Counted: 9}},
			global:   budget.Limits{"claude": budget.Lifetime(1000), "codex": budget.Lifetime(500)},
			slugs:    []string{"p", "solo"},
			used:     []used{{"solo", "", "claude", 9, 9, 9}},
			errClass: budget.ErrConflict,
			errNames: []string{"bottle q"},
		},
		{
			name:     "a bad slug is refused by name",
			bottles:  []budget.Bottle{{Slug: "bad slug"}, {Slug: "ok"}},
			global:   budget.Limits{"claude": budget.Lifetime(1000), "codex": budget.Lifetime(500)},
			slugs:    []string{"ok"},
			errClass: budget.ErrInvalid,
			errNames: []string{`bottle bad slug`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			book, err := budget.Rebuild(settings, tt.bottles, tt.budgets, tt.totals)
			checkRebuildErr(t, err, tt.errClass, tt.errNames)
			if got := book.GlobalLimits(); !reflect.DeepEqual(got, tt.global) {
				t.Errorf("global limits: got %v, want %v", got, tt.global)
			}
			if got := book.Slugs(); !slices.Equal(got, tt.slugs) {
				t.Errorf("bottles: got %v, want %v", got, tt.slugs)
			}
			for _, u := range tt.used {
				a, s, g := book.Used(u.bottle, u.agent, u.provider)
				if a != u.agentUsed || s != u.subtree || g != u.all {
					t.Errorf("Used(%s, %s, %s): got agent %d subtree %d global %d, want %d %d %d",
						u.bottle, u.agent, u.provider, a, s, g, u.agentUsed, u.subtree, u.all)
				}
			}
			for _, l := range tt.limited {
				v := book.Verdict(l.bottle, l.agent, "claude", 0)
				if v.Limit != l.limit || v.Scope.Kind != l.scope {
					t.Errorf("Verdict(%s, %s, claude): got limit %d at %s, want %d at %s",
						l.bottle, l.agent, v.Limit, v.Scope.Kind, l.limit, l.scope)
				}
			}
		})
	}
}

func checkRebuildErr(t *testing.T, err, class error, names []string) {
	t.Helper()
	if class == nil {
		if err != nil {
			t.Fatalf("Rebuild: %v, want no error", err)
		}
		return
	}
	if !errors.Is(err, class) {
		t.Fatalf("Rebuild: got %v, want %v", err, class)
	}
	for _, n := range names {
		if !strings.Contains(err.Error(), n) {
			t.Errorf("Rebuild: %v, want it to name %q", err, n)
		}
	}
}

// TestRebuildAppliesGlobalRowsInOrder: two global rows (the ledger keeps
// one per provider, read back grouped) merge, the later winning.
func TestRebuildAppliesGlobalRowsInOrder(t *testing.T) {
	book, err := budget.Rebuild(nil, nil, []budget.ScopeBudget{
		{Scope: budget.ScopeGlobal, ID: "-", Limits: budget.Limits{"claude": budget.Lifetime(1), "codex": budget.Lifetime(2)}},
		{Scope: budget.ScopeGlobal, ID: "-", Limits: budget.Limits{"claude": budget.Lifetime(3)}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := book.GlobalLimits(), (budget.Limits{"claude": budget.Lifetime(3), "codex": budget.Lifetime(2)}); !reflect.DeepEqual(got, want) {
		t.Errorf("global limits: got %v, want %v", got, want)
	}
}
