package store_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"testing"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/store"
)

func delivery(sink string, i int) budget.Delivery {
	return budget.Delivery{Sink: sink, Kind: budget.NoticeWarn, Body: fmt.Appendf(nil, `{"n":%d}`, i)}
}

// pendingBodies are a sink's queued bodies, oldest first.
func pendingBodies(t *testing.T, db *store.DB, sink string) []string {
	t.Helper()
	ds, err := db.PendingNotices(context.Background(), sink, 100)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range ds {
		out = append(out, string(d.Body))
	}
	return out
}

// TestNoticeQueue: deliveries queue per sink in order, record their
// failed attempts, and leave the queue when delivered; the ledger keeps
// them across a reopen.
func TestNoticeQueue(t *testing.T) {
	ctx := context.Background()
	db, path := openTemp(t)
	if _, err := db.QueueNotices(ctx, []budget.Delivery{delivery("ops", 1), delivery("pager", 1), delivery("ops", 2)}, 10); err != nil {
		t.Fatal(err)
	}
	ds, err := db.PendingNotices(ctx, "ops", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 2 || string(ds[0].Body) != `{"n":1}` || ds[0].Kind != budget.NoticeWarn || ds[0].CreatedAt.IsZero() || string(ds[1].Body) != `{"n":2}` {
		t.Fatalf("ops pending %+v, want n 1 then 2", ds)
	}
	if err := db.NoticeFailed(ctx, ds[0].ID, 1, "webhook answered 500"); err != nil {
		t.Fatal(err)
	}
	if err := db.NoticeDelivered(ctx, ds[1].ID); err != nil {
		t.Fatal(err)
	}
	if err := db.NoticeDelivered(ctx, ds[1].ID); err != nil {
		t.Errorf("delivered twice: %v, want nil (nothing left to forget)", err)
	}
	if err := db.NoticeFailed(ctx, ds[1].ID, 1, "x"); !errors.Is(err, budget.ErrNotFound) {
		t.Errorf("failed after delivered: %v, want ErrNotFound", err)
	}
	db.Close()
	db, err = store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ds, err = db.PendingNotices(ctx, "ops", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 || ds[0].Attempts != 1 || ds[0].LastError != "webhook answered 500" {
		t.Errorf("after a reopen ops pending %+v, want n 1 with its failed attempt", ds)
	}
	counts, err := db.NoticeCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int{"ops": 1, "pager": 1}; !maps.Equal(counts, want) {
		t.Errorf("counts %v, want %v", counts, want)
	}
}

// TestNoticeQueueKeepsTheNewest: past its cap, a sink's oldest deliveries
// are dropped and counted; other sinks keep theirs.
func TestNoticeQueueKeepsTheNewest(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	var ds []budget.Delivery
	for i := range 5 {
		ds = append(ds, delivery("ops", i))
	}
	if dropped, err := db.QueueNotices(ctx, append(ds, delivery("pager", 0)), 3); err != nil || !maps.Equal(dropped, map[string]int{"ops": 2}) {
		t.Fatalf("QueueNotices = %v, %v; want 2 of ops dropped", dropped, err)
	}
	if dropped, err := db.QueueNotices(ctx, []budget.Delivery{delivery("ops", 5)}, 3); err != nil || dropped["ops"] != 1 {
		t.Fatalf("QueueNotices = %v, %v; want 1 of ops dropped", dropped, err)
	}
	if got, want := fmt.Sprint(pendingBodies(t, db, "ops")), `[{"n":3} {"n":4} {"n":5}]`; got != want {
		t.Errorf("ops queue %s, want the newest three %s", got, want)
	}
	if got := pendingBodies(t, db, "pager"); len(got) != 1 {
		t.Errorf("pager queue %q, want its one delivery", got)
	}
}

// TestDropNotices: the deliveries of sinks the settings no longer list
// are dropped and counted.
func TestDropNotices(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	if _, err := db.QueueNotices(ctx, []budget.Delivery{delivery("ops", 1), delivery("old", 1), delivery("old", 2)}, 10); err != nil {
		t.Fatal(err)
	}
	dropped, err := db.DropNotices(ctx, []string{"ops"})
	if err != nil || !maps.Equal(dropped, map[string]int{"old": 2}) {
		t.Errorf("DropNotices = %v, %v; want old's 2", dropped, err)
	}
	if got := pendingBodies(t, db, "ops"); len(got) != 1 {
		t.Errorf("ops queue %q, want its one delivery kept", got)
	}
}
