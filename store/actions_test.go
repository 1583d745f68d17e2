package store_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/migrations"
	"github.com/bot-bottle/bottlecap/store"
)

func TestActionLifecycle(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	a, err := db.CreateAction(ctx, budget.Action{Bottle: "b1", Kind: budget.ActCutoff, Reason: "bottle budget"})
	if err != nil {
		t.Fatal(err)
	}
	if a.ID == 0 || a.Status != budget.StatusPending || a.CreatedAt.IsZero() {
		t.Errorf("created %+v, want an ID, pending, a time", a)
	}
	b, err := db.CreateAction(ctx, budget.Action{Bottle: "b2", Kind: budget.ActPause, Operator: true})
	if err != nil {
		t.Fatal(err)
	}

	a.Status, a.Attempts, a.LastError = budget.StatusPending, 1, "engine unreachable"
	if err := db.UpdateAction(ctx, a); err != nil {
		t.Fatal(err)
	}
	pending, err := db.Actions(ctx, budget.StatusPending)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 2 || pending[0].ID != a.ID || pending[1].ID != b.ID {
		t.Fatalf("pending = %+v, want a then b", pending)
	}
	if got := pending[0]; got.Attempts != 1 || got.LastError != "engine unreachable" || got.Reason != "bottle budget" {
		t.Errorf("after update: %+v", got)
	}
	if !pending[1].Operator || pending[1].Kind != budget.ActPause {
		t.Errorf("b = %+v, want an operator pause", pending[1])
	}

	a.Status, a.Attempts, a.LastError = budget.StatusDone, 2, ""
	if err := db.UpdateAction(ctx, a); err != nil {
		t.Fatal(err)
	}
	done, _ := db.Actions(ctx, budget.StatusDone)
	pending, _ = db.Actions(ctx, budget.StatusPending)
	all, _ := db.Actions(ctx, "")
	if len(done) != 1 || len(pending) != 1 || len(all) != 2 {
		t.Errorf("done %d, pending %d, all %d; want 1, 1, 2", len(done), len(pending), len(all))
	}
	one, err := db.Action(ctx, a.ID)
	if err != nil || one.Status != budget.StatusDone || one.Attempts != 2 || one.Bottle != "b1" || one.Kind != budget.ActCutoff {
		t.Errorf("Action(%d) = %+v, %v; want b1's cutoff, done after 2 attempts", a.ID, one, err)
	}
	if _, err := db.Action(ctx, 999); !errors.Is(err, budget.ErrNotFound) {
		t.Errorf("Action(999): got %v, want ErrNotFound", err)
	}
}

func TestCreateActionRejectsInvalid(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	tests := []struct {
		name string
		a    budget.Action
	}{
		{"no bottle", budget.Action{Kind: budget.ActCutoff}},
		{"bad kind", budget.Action{Bottle: "b1", Kind: "explode"}},
		{"bad status", budget.Action{Bottle: "b1", Kind: budget.ActCutoff, Status: "maybe"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := db.CreateAction(ctx, tt.a); !errors.Is(err, budget.ErrInvalid) {
				t.Errorf("got %v, want ErrInvalid", err)
			}
		})
	}
}

func TestMemos(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	if err := db.PutMemo(ctx, "b1", "routes", []byte("routes: [a]")); err != nil {
		t.Fatal(err)
	}
	if err := db.PutMemo(ctx, "b1", "routes", []byte("routes: [b]")); err != nil {
		t.Fatal(err)
	}
	if err := db.PutMemo(ctx, "b1", "empty", nil); err != nil {
		t.Fatal(err)
	}
	got, err := db.Memo(ctx, "b1", "routes")
	if err != nil || !bytes.Equal(got, []byte("routes: [b]")) {
		t.Errorf("Memo = %q, %v; want the replaced value", got, err)
	}
	if got, err := db.Memo(ctx, "b1", "empty"); err != nil || len(got) != 0 {
		t.Errorf("empty memo = %q, %v", got, err)
	}
	for i := 0; i < 2; i++ { // deleting twice is fine
		if err := db.DeleteMemo(ctx, "b1", "routes"); err != nil {
			t.Fatalf("DeleteMemo #%d: %v", i+1, err)
		}
	}
	if _, err := db.Memo(ctx, "b1", "routes"); !errors.Is(err, budget.ErrNotFound) {
		t.Errorf("Memo after delete: got %v, want ErrNotFound", err)
	}
}

// TestMigrationKeepsTheJournal opens a ledger whose journal predates the
// pause action: its actions keep their ids and fields, a new one takes the
// next id (never one used before, even by an action at the end of the old
// sequence), and a pause can be journaled.
func TestMigrationKeepsTheJournal(t *testing.T) {
	ctx := context.Background()
	raw, path := ledgerBefore(t, "pause_rate")
	for _, q := range []string{
		`INSERT INTO actions (bottle, kind, reason, operator, status, attempts, created_at, updated_at) VALUES ('b1', 'cutoff', 'budget', 0, 'done', 2, 1, 2)`,
		`INSERT INTO actions (bottle, kind, reason, operator, status, attempts, created_at, updated_at) VALUES ('b1', 'restore', 'op', 1, 'pending', 0, 3, 3)`,
		`INSERT INTO actions (bottle, kind, reason, operator, status, attempts, created_at, updated_at) VALUES ('b2', 'kill', 'gone', 0, 'done', 1, 4, 4)`,
		`DELETE FROM actions WHERE id = 3`, // the sequence stays at 3
		`INSERT INTO bottles (slug, created_at) VALUES ('b1', 1)`,
	} {
		if _, err := raw.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	raw.Close()

	db, err := store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	old, err := db.Actions(ctx, "")
	if err != nil || len(old) != 2 || old[0].ID != 1 || old[0].Attempts != 2 || old[1].ID != 2 || !old[1].Operator || old[1].Status != budget.StatusPending {
		t.Fatalf("journal after migrating: %+v (%v), want actions 1 and 2 as they were", old, err)
	}
	p, err := db.CreateAction(ctx, budget.Action{Bottle: "b1", Kind: budget.ActPause, Reason: "rate guard"})
	if err != nil || p.ID != 4 {
		t.Errorf("new pause: %+v (%v), want id 4", p, err)
	}
	if b, err := db.Bottle(ctx, "b1"); err != nil || b.Rate != nil || b.ByRateGuard {
		t.Errorf("old bottle: %+v (%v), want no rate guard of its own and no mark", b, err)
	}
}

// TestMigrationSeparatesLimitSources opens a ledger from before limit
// sources: a bottle's stored budget (registration and runtime merged) is
// read as its registration with nothing from labels, the global runtime
// limits stay, and the bottle and agent rows of budgets, which no daemon
// wrote or applied, are gone rather than coming into force.
func TestMigrationSeparatesLimitSources(t *testing.T) {
	ctx := context.Background()
	raw, path := ledgerBefore(t, "limit_sources")
	for _, q := range []string{
		`INSERT INTO bottles (slug, budget, created_at) VALUES ('b1', '{"claude":1000}', 1)`,
		`INSERT INTO budgets (scope, id, provider, tokens) VALUES ('global', '-', 'claude', 5000)`,
		`INSERT INTO budgets (scope, id, provider, tokens) VALUES ('bottle', 'b1', 'claude', 7)`,
		`INSERT INTO budgets (scope, id, provider, tokens) VALUES ('agent', 'b1/rev', 'claude', 8)`,
	} {
		if _, err := raw.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	raw.Close()

	db, err := store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	b, err := db.Bottle(ctx, "b1")
	if err != nil || b.Budget["claude"].String() != "1000" || b.LabelBudget != nil {
		t.Errorf("old bottle: %+v (%v), want its budget as its registration and no labels", b, err)
	}
	budgets, err := db.Budgets(ctx)
	if err != nil || len(budgets) != 1 || budgets[0].Scope != budget.ScopeGlobal || budgets[0].Limits["claude"].String() != "5000" {
		t.Errorf("runtime limits after migrating: %+v (%v), want the global one only", budgets, err)
	}
}

// ledgerBefore makes a ledger as a daemon of an earlier version left it:
// every migration before the one named NNNN_<name>.sql applied and
// recorded. It returns the ledger open, for the test to fill and close, and
// its path.
func ledgerBefore(t *testing.T, name string) (*sql.DB, string) {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	raw, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	all, err := migrations.All()
	if err != nil {
		t.Fatal(err)
	}
	before := slices.IndexFunc(all, func(m migrations.Migration) bool { return strings.HasSuffix(m.Name, "_"+name+".sql") })
	if before < 0 {
		t.Fatalf("no %s migration", name)
	}
	raw.Exec(`CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`)
	for _, m := range all[:before] {
		if _, err := raw.ExecContext(ctx, m.SQL); err != nil {
			t.Fatalf("%s: %v", m.Name, err)
		}
		raw.Exec(`INSERT INTO schema_version VALUES (?, ?, 0)`, m.Version, m.Name)
	}
	return raw, path
}
