package store_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
)

func TestBottlesCRUD(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	created := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	want := budget.Bottle{
		Slug: "impl-abc12", Agent: "implementer", Name: "dev", Parent: "lead-1",
		Budget:       budget.Limits{"claude": budget.Lifetime(1_000_000)},
		LabelBudget:  budget.Limits{"codex": budget.LimitSet{{Tokens: 500_000, Window: budget.Window{Period: budget.Day}}}},
		AgentBudgets: map[string]budget.Limits{"reviewer": {"claude": budget.Lifetime(200_000)}},
		Shutdown:     budget.Freeze, Containers: []string{"c1", "c2"},
		State: budget.CutOff, StateReason: "operator: runaway loop", ByOperator: true,
		Implicit: true, CreatedAt: created,
		Rate: budget.Rates{"claude": 300_000}, ByRateGuard: true,
	}
	if err := db.PutBottle(ctx, want); err != nil {
		t.Fatal(err)
	}
	if err := db.PutBottle(ctx, budget.Bottle{Slug: "aaa"}); err != nil {
		t.Fatal(err)
	}
	got, err := db.Bottle(ctx, want.Slug)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Bottle = %+v\nwant %+v", got, want)
	}

	// Replacing keeps created_at when the new value has none.
	want.Implicit, want.CreatedAt, want.Containers, want.Rate, want.ByRateGuard = false, time.Time{}, nil, nil, false
	if err := db.PutBottle(ctx, want); err != nil {
		t.Fatal(err)
	}
	got, _ = db.Bottle(ctx, want.Slug)
	if !got.CreatedAt.Equal(created) || got.Implicit || got.Containers != nil || got.Rate != nil || got.ByRateGuard {
		t.Errorf("after replace: %+v", got)
	}

	all, err := db.Bottles(ctx)
	if err != nil || len(all) != 2 || all[0].Slug != "aaa" || all[0].State != budget.Active {
		t.Errorf("Bottles = %+v, %v; want aaa (active) then %s", all, err, want.Slug)
	}
	if all[0].CreatedAt.IsZero() {
		t.Error("a new bottle without CreatedAt got none")
	}

	if err := db.SetBottleState(ctx, want.Slug, budget.CutOff); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.Bottle(ctx, want.Slug); got.State != budget.CutOff {
		t.Errorf("state = %s, want cut_off", got.State)
	}
	if err := db.DeleteBottle(ctx, want.Slug); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Bottle(ctx, want.Slug); !errors.Is(err, budget.ErrNotFound) {
		t.Errorf("Bottle after delete: got %v, want ErrNotFound", err)
	}
}

func TestBottleNotFound(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	tests := []struct {
		name string
		call func() error
	}{
		{"Bottle", func() error { _, err := db.Bottle(ctx, "nope"); return err }},
		{"DeleteBottle", func() error { return db.DeleteBottle(ctx, "nope") }},
		{"SetBottleState", func() error { return db.SetBottleState(ctx, "nope", budget.Frozen) }},
		{"Memo", func() error { _, err := db.Memo(ctx, "nope", "k"); return err }},
		{"UpdateAction", func() error {
			return db.UpdateAction(ctx, budget.Action{ID: 42, Status: budget.StatusDone})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, budget.ErrNotFound) {
				t.Errorf("got %v, want ErrNotFound", err)
			}
		})
	}
}

func TestPutBudgetMergesProviders(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	puts := []struct {
		scope  budget.ScopeKind
		id     string
		limits budget.Limits
	}{
		{budget.ScopeGlobal, "-", budget.Limits{"claude": budget.Lifetime(5_000_000), "codex": budget.Lifetime(2_000_000)}},
		{budget.ScopeBottle, "b1", budget.Limits{"claude": budget.Lifetime(1_000)}},
		{budget.ScopeGlobal, "-", budget.Limits{"codex": budget.Lifetime(3_000_000)}},
		{budget.ScopeAgent, "b1/rev", budget.Limits{"claude": budget.Lifetime(10)}},
	}
	for _, p := range puts {
		if err := db.PutBudget(ctx, p.scope, p.id, p.limits); err != nil {
			t.Fatalf("PutBudget(%s, %s): %v", p.scope, p.id, err)
		}
	}
	got, err := db.Budgets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []budget.ScopeBudget{
		{Scope: budget.ScopeAgent, ID: "b1/rev", Limits: budget.Limits{"claude": budget.Lifetime(10)}},
		{Scope: budget.ScopeBottle, ID: "b1", Limits: budget.Limits{"claude": budget.Lifetime(1_000)}},
		{Scope: budget.ScopeGlobal, ID: "-", Limits: budget.Limits{"claude": budget.Lifetime(5_000_000), "codex": budget.Lifetime(3_000_000)}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Budgets = %+v\nwant %+v", got, want)
	}
}

// TestDeleteBudget: removing a scope's runtime limits for some providers
// leaves its others and every other scope's; removing twice is no error.
func TestDeleteBudget(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	both := budget.Limits{"claude": budget.Lifetime(1), "codex": budget.Lifetime(2)}
	for _, id := range []string{"b1", "b2"} {
		if err := db.PutBudget(ctx, budget.ScopeBottle, id, both); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 2; i++ {
		if err := db.DeleteBudget(ctx, budget.ScopeBottle, "b1", "claude", "gemini"); err != nil {
			t.Fatalf("DeleteBudget #%d: %v", i+1, err)
		}
	}
	got, err := db.Budgets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []budget.ScopeBudget{
		{Scope: budget.ScopeBottle, ID: "b1", Limits: budget.Limits{"codex": budget.Lifetime(2)}},
		{Scope: budget.ScopeBottle, ID: "b2", Limits: both},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Budgets = %+v\nwant %+v", got, want)
	}
}

// TestDeleteBottleDropsItsRuntimeLimits: forgetting a bottle removes the
// runtime limits of its scope and its agents' scopes, and no other
// bottle's, even one whose slug it begins (b1 and b1_x, b10).
func TestDeleteBottleDropsItsRuntimeLimits(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	one := budget.Limits{"claude": budget.Lifetime(1)}
	for _, b := range []string{"b1", "b1_x", "b10"} {
		if err := db.PutBottle(ctx, budget.Bottle{Slug: b}); err != nil {
			t.Fatal(err)
		}
		for _, s := range []budget.Scope{{Kind: budget.ScopeBottle, ID: b}, {Kind: budget.ScopeAgent, ID: b + "/rev"}} {
			if err := db.PutBudget(ctx, s.Kind, s.ID, one); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := db.DeleteBottle(ctx, "b1"); err != nil {
		t.Fatal(err)
	}
	got, err := db.Budgets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, b := range got {
		ids = append(ids, string(b.Scope)+"/"+b.ID)
	}
	if want := []string{"agent/b10/rev", "agent/b1_x/rev", "bottle/b10", "bottle/b1_x"}; !reflect.DeepEqual(ids, want) {
		t.Errorf("runtime limits left: %v, want %v", ids, want)
	}
}

func TestPutBudgetRejectsInvalid(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	tests := []struct {
		name   string
		scope  budget.ScopeKind
		id     string
		limits budget.Limits
	}{
		{"parent scope", budget.ScopeParent, "b1", budget.Limits{"claude": budget.Lifetime(1)}},
		{"no id", budget.ScopeBottle, "", budget.Limits{"claude": budget.Lifetime(1)}},
		{"negative", budget.ScopeBottle, "b1", budget.Limits{"claude": budget.Lifetime(-1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := db.PutBudget(ctx, tt.scope, tt.id, tt.limits); !errors.Is(err, budget.ErrInvalid) {
				t.Errorf("got %v, want ErrInvalid", err)
			}
		})
	}
}

func TestMarkWarnedFirstThenAgain(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	steps := []struct {
		scope       budget.ScopeKind
		id, prov    string
		clear       bool
		wantFirst   bool
		description string
	}{
		{budget.ScopeBottle, "b1", "claude", false, true, "first crossing"},
		{budget.ScopeBottle, "b1", "claude", false, false, "again"},
		{budget.ScopeBottle, "b1", "codex", false, true, "other provider"},
		{budget.ScopeGlobal, "-", "claude", false, true, "other scope"},
		{budget.ScopeBottle, "b1", "claude", true, true, "after clear"},
	}
	for _, s := range steps {
		if s.clear {
			if err := db.ClearWarned(ctx, s.scope, s.id); err != nil {
				t.Fatal(err)
			}
		}
		first, err := db.MarkWarned(ctx, s.scope, s.id, s.prov, "", time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if first != s.wantFirst {
			t.Errorf("%s: first = %v, want %v", s.description, first, s.wantFirst)
		}
	}
}
