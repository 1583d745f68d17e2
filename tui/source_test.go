package tui_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/store"
	"github.com/bot-bottle/bottlecap/tui"
)

// TestStoreSource loads a snapshot from a real ledger, written by the
// daemon's store and read through store.OpenReadOnly, as `bottlecap dash`
// does.
func TestStoreSource(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "bot-bottle.db")
	w, err := store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	seed(t, w)
	settings := filepath.Join(dir, "settings.yml")
	if err := os.WriteFile(settings, []byte("budget:\n  claude: 5M\nwarn_at: 80%\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := store.OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	now := time.Now()
	clock := func() time.Time { return now }
	src := tui.NewStoreSource(r, settings, nil, clock)
	snap, err := src.Load(ctx, "child-b")
	if err != nil {
		t.Fatal(err)
	}
	checkRows(t, snap)
	if snap.Detail == nil || len(snap.Detail.Reports) != 2 || len(snap.Detail.Audit) != 1 {
		t.Fatalf("detail = %+v, want 2 reports and 1 audit entry", snap.Detail)
	}

	// The sampler turns growth between loads into a burn rate.
	appendReport(t, w, "r3", "child-b", 60_000, now)
	now = now.Add(time.Minute)
	if snap, err = src.Load(ctx, ""); err != nil {
		t.Fatal(err)
	}
	row, _ := snap.Row("child-b")
	if row.Burn != 12_000 { // 60k over the five-minute window
		t.Errorf("burn = %v, want 12000 tokens/min", row.Burn)
	}
	if row.ETA <= 0 {
		t.Errorf("eta = %v, want a positive estimate", row.ETA)
	}
}

func seed(t *testing.T, w *store.DB) {
	t.Helper()
	ctx := context.Background()
	for _, b := range []budget.Bottle{
		{Slug: "root-a", Agent: "orchestrator", Budget: budget.Limits{"claude": budget.Lifetime(1_000_000)}, State: budget.Active},
		{Slug: "child-b", Agent: "implementer", Parent: "root-a", State: budget.Active},
		{Slug: "other-c", Agent: "coder", State: budget.CutOff},
	} {
		if err := w.PutBottle(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	appendReport(t, w, "r1", "child-b", 500_000, time.Now())
	appendReport(t, w, "r2", "child-b", 300_000, time.Now())
	if _, err := w.CreateAction(ctx, budget.Action{Bottle: "other-c", Kind: budget.ActCutoff, Reason: "runaway", Operator: true, Status: budget.StatusDone}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.AppendAudit(ctx, budget.AuditEntry{Kind: "warn", Bottle: "child-b", Detail: "past 80%"}); err != nil {
		t.Fatal(err)
	}
}

func appendReport(t *testing.T, w *store.DB, id, bottle string, n int64, ts time.Time) {
	t.Helper()
	r := budget.Report{ID: id, Bottle: bottle, Provider: "claude", Usage: budget.Usage{Input: n}, Counted: n, Complete: true, TS: ts}
	if _, err := w.AppendReports(context.Background(), []budget.Report{r}); err != nil {
		t.Fatal(err)
	}
}

func checkRows(t *testing.T, snap tui.Snapshot) {
	t.Helper()
	var order []string
	for _, r := range snap.Rows {
		order = append(order, r.Slug)
	}
	if got, want := len(order), 3; got != want || order[0] != "other-c" && order[0] != "root-a" {
		t.Fatalf("rows = %v", order)
	}
	child, ok := snap.Row("child-b")
	if !ok || child.Depth != 1 || child.Scope != (budget.Scope{Kind: budget.ScopeParent, ID: "root-a"}) {
		t.Fatalf("child-b = %+v, want depth 1 governed by parent root-a", child)
	}
	if child.Used != 800_000 || child.Limit != 1_000_000 || child.State != budget.Warned {
		t.Errorf("child-b used %d of %d, state %s; want 800000 of 1000000, warned", child.Used, child.Limit, child.State)
	}
	other, _ := snap.Row("other-c")
	if other.State != budget.CutOff || other.Reason != "runaway" {
		t.Errorf("other-c = %s %q, want cut_off \"runaway\"", other.State, other.Reason)
	}
	if len(snap.Providers) != 1 || snap.Providers[0].Limit != 5_000_000 {
		t.Errorf("providers = %+v, want claude with the 5M global limit", snap.Providers)
	}
}

// TestStoreSourceAppliesTheDaemonsBudgetRows: the dashboard rebuilds its
// book as the daemon does. The ledger's budgets rows are runtime limits of
// every scope, in force over a bottle's registration (its row) and the
// settings.
func TestStoreSourceAppliesTheDaemonsBudgetRows(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "bot-bottle.db")
	w, err := store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	seed(t, w) // root-a's own budget: 1M claude; child-b used 800k
	for _, b := range []budget.ScopeBudget{
		{Scope: budget.ScopeBottle, ID: "root-a", Limits: budget.Limits{"claude": budget.Lifetime(10)}},
		{Scope: budget.ScopeAgent, ID: "child-b/implementer", Limits: budget.Limits{"claude": budget.Lifetime(20)}},
		{Scope: budget.ScopeGlobal, ID: "-", Limits: budget.Limits{"claude": budget.Lifetime(4_000_000)}},
	} {
		if err := w.PutBudget(ctx, b.Scope, b.ID, b.Limits); err != nil {
			t.Fatal(err)
		}
	}
	src := tui.NewStoreSource(w, filepath.Join(t.TempDir(), "none.yml"), nil, time.Now)
	snap, err := src.Load(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	child, _ := snap.Row("child-b")
	if child.Limit != 20 || child.Scope != (budget.Scope{Kind: budget.ScopeAgent, ID: "child-b/implementer"}) {
		t.Errorf("child-b governed by %s at %d, want its agent's runtime 20", child.Scope, child.Limit)
	}
	root, _ := snap.Row("root-a")
	if root.Limit != 10 || root.Scope != (budget.Scope{Kind: budget.ScopeBottle, ID: "root-a"}) {
		t.Errorf("root-a governed by %s at %d, want its runtime 10 over its registration's 1000000", root.Scope, root.Limit)
	}
	if len(snap.Providers) != 1 || snap.Providers[0].Limit != 4_000_000 {
		t.Errorf("providers = %+v, want claude with the global row's 4M", snap.Providers)
	}
}
