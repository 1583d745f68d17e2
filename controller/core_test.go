package controller_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/controller"
)

// These tests run the controller over fakeLedger: no socket, no SQLite.

// seeded is a fake ledger holding the given rows.
func seeded(bottles []budget.Bottle, budgets []budget.ScopeBudget, totals []budget.Total) *fakeLedger {
	f := newFakeLedger()
	for _, b := range bottles {
		f.bottles[b.Slug] = b
	}
	f.budgets, f.totals = budgets, totals
	return f
}

// journaled lists the fake's actions as "kind bottle status".
func journaled(f *fakeLedger) []string {
	_, acts, _ := f.snapshot()
	var out []string
	for _, a := range acts {
		out = append(out, fmt.Sprintf("%s %s %s", a.Kind, a.Bottle, a.Status))
	}
	return out
}

// TestNewRebuildsFromTheLedger: New rebuilds its book from the ledger's
// rows and journals, in the ledger, the crossings it finds exhausted there
// (a crash between commit and journal). Which rows count shows in what is
// acted on.
func TestNewRebuildsFromTheLedger(t *testing.T) {
	tests := []struct {
		name    string
		bottles []budget.Bottle
		budgets []budget.ScopeBudget
		totals  []budget.Total
		want    []string
	}{
		{
			name:    "usage under every budget",
			bottles: []budget.Bottle{{Slug: "b1", Agent: "a", Budget: budget.Limits{"claude": budget.Lifetime(100)}}},
			totals:  []budget.Total{{Bottle: "b1", Agent: "a", Provider: "claude", Counted: 99}},
		},
		{
			name:    "a bottle's own budget exhausted",
			bottles: []budget.Bottle{{Slug: "b1", Agent: "a", Budget: budget.Limits{"claude": budget.Lifetime(100)}}},
			totals:  []budget.Total{{Bottle: "b1", Agent: "a", Provider: "claude", Counted: 150}},
			want:    []string{"cutoff b1 pending"},
		},
		{
			name: "a parent's budget exhausted by its child acts on the subtree, each by its own policy",
			bottles: []budget.Bottle{
				{Slug: "child", Parent: "parent", Agent: "a"},
				{Slug: "parent", Agent: "a", Budget: budget.Limits{"claude": budget.Lifetime(100)}, Shutdown: budget.Freeze},
			},
			totals: []budget.Total{{Bottle: "child", Agent: "a", Provider: "claude", Counted: 100}},
			want:   []string{"cutoff child pending", "freeze parent pending"},
		},
		{
			name:    "the global row is in force",
			bottles: []budget.Bottle{{Slug: "b1", Agent: "a"}},
			budgets: []budget.ScopeBudget{{Scope: budget.ScopeGlobal, ID: "-", Limits: budget.Limits{"claude": budget.Lifetime(100)}}},
			totals:  []budget.Total{{Bottle: "b1", Agent: "a", Provider: "claude", Counted: 100}},
			want:    []string{"cutoff b1 pending"},
		},
		{
			name:    "bottle and agent rows are runtime limits, over the bottle's registration",
			bottles: []budget.Bottle{{Slug: "b1", Agent: "a", Budget: budget.Limits{"claude": budget.Lifetime(1000)}}},
			budgets: []budget.ScopeBudget{
				{Scope: budget.ScopeBottle, ID: "b1", Limits: budget.Limits{"claude": budget.Lifetime(50)}},
			},
			totals: []budget.Total{{Bottle: "b1", Agent: "a", Provider: "claude", Counted: 100}},
			want:   []string{"cutoff b1 pending"},
		},
		{
			name:    "an agent row is in force",
			bottles: []budget.Bottle{{Slug: "b1", Agent: "a"}},
			budgets: []budget.ScopeBudget{
				{Scope: budget.ScopeAgent, ID: "b1/a", Limits: budget.Limits{"claude": budget.Lifetime(1)}},
			},
			totals: []budget.Total{{Bottle: "b1", Agent: "a", Provider: "claude", Counted: 100}},
			want:   []string{"cutoff b1 pending"},
		},
		{
			name:    "a bottle already cut off is not acted on again",
			bottles: []budget.Bottle{{Slug: "b1", Agent: "a", Budget: budget.Limits{"claude": budget.Lifetime(100)}, State: budget.CutOff}},
			totals:  []budget.Total{{Bottle: "b1", Agent: "a", Provider: "claude", Counted: 150}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := seeded(tt.bottles, tt.budgets, tt.totals)
			if _, err := controller.New(context.Background(), controller.Config{Ledger: f}); err != nil {
				t.Fatalf("New: %v", err)
			}
			got := journaled(f)
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("journaled %q, want %q", got, tt.want)
			}
			bottles, _, audit := f.snapshot()
			for _, want := range tt.want {
				slug := strings.Fields(want)[1]
				if st := bottles[slug].State; st != budget.Pending {
					t.Errorf("bottle %s stored %s, want pending until its action runs", slug, st)
				}
				if !slices.ContainsFunc(audit, func(e budget.AuditEntry) bool { return e.Kind == "action_pending" && e.Bottle == slug }) {
					t.Errorf("no action_pending audit entry for %s in %+v", slug, audit)
				}
			}
		})
	}
}

// TestNewRefusesALedgerItCannotLoad: a ledger that cannot be read, or
// holds a bottle the book refuses, stops the daemon from starting rather
// than letting it answer from a partial picture.
func TestNewRefusesALedgerItCannotLoad(t *testing.T) {
	unreadable := fmt.Errorf("disk on fire: %w", budget.ErrUnavailable)
	tests := []struct {
		name    string
		failing string // the ledger method that fails
		bottles []budget.Bottle
		want    error
		names   string
	}{
		{name: "bottles unreadable", failing: "Bottles", want: unreadable, names: "load bottles"},
		{name: "budgets unreadable", failing: "Budgets", want: unreadable, names: "load budgets"},
		{name: "totals unreadable", failing: "Totals", want: unreadable, names: "load usage"},
		{name: "pending actions unreadable", failing: "Actions", want: unreadable, names: "load pending actions"},
		{
			name:    "a parent cycle",
			bottles: []budget.Bottle{{Slug: "p", Parent: "q"}, {Slug: "q", Parent: "p"}},
			want:    budget.ErrConflict,
			names:   "load bottle q",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := seeded(tt.bottles, nil, nil)
			f.fail = func(method string) error {
				if method == tt.failing {
					return unreadable
				}
				return nil
			}
			_, err := controller.New(context.Background(), controller.Config{Ledger: f})
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.names) {
				t.Errorf("New: got %v, want %v naming %q", err, tt.want, tt.names)
			}
		})
	}
}

// TestNewHandsPendingActionsToTheEnforcer: an action the ledger holds
// pending (the daemon stopped before it finished) runs again on start,
// and its outcome is journaled in the ledger.
func TestNewHandsPendingActionsToTheEnforcer(t *testing.T) {
	f := seeded([]budget.Bottle{{Slug: "b1", Agent: "a", Budget: budget.Limits{"claude": budget.Lifetime(100)}, State: budget.Pending, StateReason: "cutoff pending: runaway"}},
		nil, []budget.Total{{Bottle: "b1", Agent: "a", Provider: "claude", Counted: 150}})
	f.actions = []budget.Action{{ID: 1, Bottle: "b1", Kind: budget.ActCutoff, Reason: "runaway", Status: budget.StatusPending}}
	enf := &fakeEnforcer{}
	if _, err := controller.New(context.Background(), controller.Config{Ledger: f, Enforcer: enf}); err != nil {
		t.Fatalf("New: %v", err)
	}
	eventually(t, "the resumed cutoff journaled done", func() bool {
		return slices.Equal(journaled(f), []string{"cutoff b1 done"})
	})
	eventually(t, "b1 stored cut off", func() bool {
		bottles, _, _ := f.snapshot()
		return bottles["b1"].State == budget.CutOff
	})
	if jobs := enf.submitted(); len(jobs) != 1 || jobs[0].Action.ID != 1 {
		t.Errorf("enforcer got %+v, want action 1 once", jobs)
	}
}

// TestPendingCutoffWithRoomEndsRestored: a budget's cutoff still pending at
// start whose budget was raised meanwhile ends restored, whether the
// cutoff finishes before the start-up reconcile looks at the bottle (an
// enforcer that finishes inside Submit) or after it (a held one, finished
// once the core is built).
func TestPendingCutoffWithRoomEndsRestored(t *testing.T) {
	seed := func() *fakeLedger {
		f := seeded([]budget.Bottle{{Slug: "b1", Agent: "a", Budget: budget.Limits{"claude": budget.Lifetime(1000)}, State: budget.Pending, StateReason: "cutoff pending: budget"}},
			nil, []budget.Total{{Bottle: "b1", Agent: "a", Provider: "claude", Counted: 150}})
		f.actions = []budget.Action{{ID: 1, Bottle: "b1", Kind: budget.ActCutoff, Reason: "budget", Status: budget.StatusPending}}
		return f
	}
	restored := func(t *testing.T, f *fakeLedger) {
		t.Helper()
		eventually(t, "b1 restored", func() bool {
			bottles, _, _ := f.snapshot()
			return bottles["b1"].State == budget.Active && slices.Equal(journaled(f), []string{"cutoff b1 done", "restore b1 done"})
		})
	}
	t.Run("cutoff finishes before the reconcile", func(t *testing.T) {
		f := seed()
		if _, err := controller.New(context.Background(), controller.Config{Ledger: f, Enforcer: inlineEnforcer{}}); err != nil {
			t.Fatalf("New: %v", err)
		}
		restored(t, f)
	})
	t.Run("cutoff finishes after the reconcile", func(t *testing.T) {
		f := seed()
		enf := &heldEnforcer{}
		if _, err := controller.New(context.Background(), controller.Config{Ledger: f, Enforcer: enf}); err != nil {
			t.Fatalf("New: %v", err)
		}
		enf.job(t, 0).Finished(1, nil)
		enf.job(t, 1).Finished(1, nil) // the restore
		restored(t, f)
	})
}

// inlineEnforcer finishes every job inside Submit.
type inlineEnforcer struct{}

func (inlineEnforcer) Submit(j controller.Job) { j.Finished(1, nil) }
