package store_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/bot-bottle/bottlecap/budget"
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
	b, err := db.CreateAction(ctx, budget.Action{Bottle: "b2", Kind: budget.ActKill, Operator: true})
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
	if !pending[1].Operator || pending[1].Kind != budget.ActKill {
		t.Errorf("b = %+v, want an operator kill", pending[1])
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
