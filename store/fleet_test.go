package store_test

import (
	"context"
	"fmt"
	"reflect"
	"strconv"
	"sync"
	"testing"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/store"
)

func TestReportsAfterFollowsTheLedgerInOrder(t *testing.T) {
	db, _ := openTemp(t)
	mustAppend(t, db, report("r1", "b1", "", "claude", 1), report("r2", "b2", "", "codex", 2))
	mustAppend(t, db, report("r1", "b1", "", "claude", 1), report("r3", "b1", "", "claude", 3)) // r1 again: not stored
	ctx := context.Background()
	all, err := db.ReportsAfter(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if got := seqIDs(all); got != "1:r1 2:r2 3:r3" {
		t.Errorf("ReportsAfter(0) = %s, want 1:r1 2:r2 3:r3", got)
	}
	if want := report("r3", "b1", "", "claude", 3); all[2].Report.Counted != want.Counted || !all[2].TS.Equal(want.TS) || all[2].Usage != want.Usage || all[2].Host != want.Host {
		t.Errorf("r3 read back as %+v, want %+v", all[2].Report, want)
	}
	page, err := db.ReportsAfter(ctx, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := seqIDs(page); got != "2:r2" {
		t.Errorf("ReportsAfter(1, limit 1) = %s, want 2:r2", got)
	}
	if rest, _ := db.ReportsAfter(ctx, 3, 10); len(rest) != 0 {
		t.Errorf("ReportsAfter(3) = %s, want none", seqIDs(rest))
	}
}

func seqIDs(rs []budget.SeqReport) string {
	s := ""
	for i, r := range rs {
		if i > 0 {
			s += " "
		}
		s += strconv.FormatInt(r.Seq, 10) + ":" + r.ID
	}
	return s
}

func TestFleetCursorOnlyMovesForward(t *testing.T) {
	db, path := openTemp(t)
	ctx := context.Background()
	if seq, err := db.FleetCursor(ctx); err != nil || seq != 0 {
		t.Fatalf("a new ledger's cursor %d, %v; want 0", seq, err)
	}
	for _, seq := range []int64{5, 3} {
		if err := db.SetFleetCursor(ctx, seq); err != nil {
			t.Fatal(err)
		}
	}
	if seq, _ := db.FleetCursor(ctx); seq != 5 {
		t.Errorf("cursor %d after 5 then 3, want 5", seq)
	}
	db.Close()
	again, err := store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if seq, _ := again.FleetCursor(ctx); seq != 5 {
		t.Errorf("cursor %d after reopening, want 5", seq)
	}
}

func TestCommittedSignalsNewReportsOnly(t *testing.T) {
	db, _ := openTemp(t)
	mustAppend(t, db, report("r1", "b1", "", "claude", 1))
	mustAppend(t, db, report("r2", "b1", "", "claude", 2)) // two commits, one signal standing
	select {
	case <-db.Committed():
	default:
		t.Fatal("no signal after commits of new reports")
	}
	select {
	case <-db.Committed():
		t.Fatal("a second signal: signals should fold into one")
	default:
	}
	mustAppend(t, db, report("r1", "b1", "", "claude", 1)) // a duplicate stores nothing
	select {
	case <-db.Committed():
		t.Error("a signal after a commit that stored no report")
	default:
	}
}

func TestFleetInstanceIsTheLedgers(t *testing.T) {
	db, path := openTemp(t)
	ctx := context.Background()
	first, err := db.FleetInstance(ctx)
	if err != nil || len(first) != 16 {
		t.Fatalf("FleetInstance = %q, %v; want 16 hex digits", first, err)
	}
	if again, _ := db.FleetInstance(ctx); again != first {
		t.Errorf("a second call gave %q, want %q", again, first)
	}
	db.Close()
	reopened, err := store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer reopened.Close()
	if got, _ := reopened.FleetInstance(ctx); got != first {
		t.Errorf("after reopening %q, want %q", got, first)
	}
	other, _ := openTemp(t)
	if got, _ := other.FleetInstance(ctx); got == first || got == "" {
		t.Errorf("another ledger's instance %q, want one of its own", got)
	}
}

// TestReportsAfterFromMemoryIsTheLedger holds the in-memory tail to what
// SQLite reads: commits of every insert chunk size, duplicates among them,
// group commits from concurrent submitters, more reports than the tail
// holds, and a reopened ledger.
func TestReportsAfterFromMemoryIsTheLedger(t *testing.T) {
	db, path := openTemp(t)
	db.KeepCommittedTail()
	ctx := context.Background()
	n := 0
	next := func(k int) []budget.Report {
		var rs []budget.Report
		for range k {
			n++
			rs = append(rs, report(fmt.Sprintf("r%05d", n), fmt.Sprintf("b%d", n%3), "", "claude", int64(n%50+1)))
		}
		return rs
	}
	for _, k := range []int{1, 3, 64, 100, 200, 7} {
		rs := next(k)
		mustAppend(t, db, append(rs, rs[0])...) // a duplicate in the batch stores nothing
	}
	w := store.NewWriter(db)
	var wg sync.WaitGroup
	for range 8 {
		rs := next(40)
		wg.Go(func() {
			for i := 0; i < len(rs); i += 5 {
				if _, err := w.Submit(ctx, rs[i:i+5]); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	w.Close()
	sameAsLedger(t, db, n)
	mustAppend(t, db, next(9000)...) // more than the tail holds
	sameAsLedger(t, db, n)
	db.Close()
	again, err := store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	again.KeepCommittedTail()
	sameAsLedger(t, again, n)
	mustAppend(t, again, next(10)...)
	if again.TailHeld() != 10 {
		t.Errorf("after a reopen and 10 reports the tail holds %d, want 10", again.TailHeld())
	}
	sameAsLedger(t, again, n)
}

// TestAHostAloneKeepsNoTail: without a fleet shipper the ledger keeps no
// committed reports in memory, and ReportsAfter still answers from SQLite.
func TestAHostAloneKeepsNoTail(t *testing.T) {
	db, _ := openTemp(t)
	mustAppend(t, db, report("a", "b", "", "claude", 1), report("c", "b", "", "claude", 2))
	if db.TailHeld() != 0 {
		t.Errorf("a ledger no shipper reads holds %d reports in memory, want 0", db.TailHeld())
	}
	got, err := db.ReportsAfter(context.Background(), 0, 10)
	if err != nil || len(got) != 2 {
		t.Fatalf("ReportsAfter = %d reports, %v; want 2", len(got), err)
	}
	db.KeepCommittedTail()
	mustAppend(t, db, report("d", "b", "", "claude", 3))
	if db.TailHeld() != 1 {
		t.Errorf("once kept, the tail holds %d reports, want 1", db.TailHeld())
	}
}

// sameAsLedger compares ReportsAfter with SQLite's answer around the
// newest of n reports, and from the start.
func sameAsLedger(t *testing.T, db *store.DB, n int) {
	t.Helper()
	ctx := context.Background()
	for _, after := range []int64{0, 1, int64(n) - 300, int64(n) - 65, int64(n) - 1, int64(n), int64(n) + 5} {
		for _, limit := range []int{1, 50, 500} {
			got, err := db.ReportsAfter(ctx, after, limit)
			if err != nil {
				t.Fatal(err)
			}
			want, err := db.ReportsAfterSQL(ctx, max(after, 0), limit)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) && (len(got) > 0 || len(want) > 0) {
				t.Fatalf("ReportsAfter(%d, %d): %d reports from %v, SQLite %d from %v", after, limit, len(got), firstSeq(got), len(want), firstSeq(want))
			}
		}
	}
}

func firstSeq(rs []budget.SeqReport) any {
	if len(rs) == 0 {
		return "-"
	}
	return rs[0].Seq
}
