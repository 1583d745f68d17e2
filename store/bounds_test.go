package store_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
)

// TestTotalsSaturateInSQL puts aggregates a few tokens short of the int64
// range and appends on top: every column stops at budget.MaxCounted and
// stays an INTEGER (an overflowing sum would become a REAL that no longer
// scans, and the daemon would not start).
func TestTotalsSaturateInSQL(t *testing.T) {
	ctx := context.Background()
	db, path := openTemp(t)
	mustAppend(t, db, report("a", "b1", "ag", "claude", 1))
	near := budget.MaxCounted - 5
	if _, err := rawOpen(t, path).Exec(`UPDATE totals SET input = ?, cache_read = ?, cache_write = ?,
		output = ?, reasoning = ?, counted = ?, reports = ?`, near, near, near, near, near, near, near); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, db, report("b", "b1", "ag", "claude", 1000))
	totals, err := db.Totals(ctx)
	if err != nil || len(totals) != 1 {
		t.Fatalf("Totals = %+v, %v; want one", totals, err)
	}
	got := totals[0]
	max := budget.MaxCounted
	want := budget.Usage{Input: max, CacheRead: max, CacheWrite: max, Output: max, Reasoning: max}
	if got.Usage != want || got.Counted != max || got.Reports != near+1 || len(got.Clamped) != 0 {
		t.Errorf("got %+v, want every count saturated at %d (reports %d), nothing clamped on read", got, max, near+1)
	}
	var kinds string
	if err := rawOpen(t, path).QueryRow(`SELECT typeof(input) || typeof(counted) || typeof(reasoning) FROM totals`).Scan(&kinds); err != nil || kinds != "integerintegerinteger" {
		t.Errorf("column types %q (%v), want integers", kinds, err)
	}
}

// TestTotalsClampRowsOutOfRange reads a ledger an older daemon left with a
// REAL (overflowed) and a negative total, written by direct SQL: Totals
// still answers, clamps the counts and names what it clamped; the next
// append for the key rewrites the row as integers.
func TestTotalsClampRowsOutOfRange(t *testing.T) {
	ctx := context.Background()
	db, path := openTemp(t)
	raw := rawOpen(t, path)
	for _, q := range []string{
		`INSERT INTO totals (bottle, agent, provider, counted, reasoning, reports) VALUES ('big', 'a', 'claude', 1.8446744073709552e19, 9e18 + 9e18, 2)`,
		`INSERT INTO totals (bottle, agent, provider, counted, input, reports) VALUES ('neg', 'a', 'claude', -9223372036853775332, -5, 1)`,
	} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	totals, err := db.Totals(ctx)
	if err != nil || len(totals) != 2 {
		t.Fatalf("Totals = %+v, %v; want two rows read despite their values", totals, err)
	}
	big, neg := totals[0], totals[1]
	if big.Counted != budget.MaxCounted || big.Usage.Reasoning != budget.MaxCounted || !strings.Contains(strings.Join(big.Clamped, " "), "counted=") {
		t.Errorf("REAL row read as %+v, want counted and reasoning at MaxCounted, clamped named", big)
	}
	if neg.Counted != 0 || neg.Usage.Input != 0 || len(neg.Clamped) != 2 {
		t.Errorf("negative row read as %+v, want 0s and two clamped columns", neg)
	}
	mustAppend(t, db, report("x", "big", "a", "claude", 1), report("y", "neg", "a", "claude", 1))
	totals, err = db.Totals(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tot := range totals {
		if len(tot.Clamped) != 0 {
			t.Errorf("after an append, %s still holds out-of-range %v", tot.Bottle, tot.Clamped)
		}
	}
	if totals[1].Counted != report("y", "neg", "a", "claude", 1).Counted {
		t.Errorf("healed negative row counts %d, want the new report's alone", totals[1].Counted)
	}
}

// TestUsageBucketsSaturate: two reports whose weighted counts (a huge
// weight) pass int64 together made sum() fail the dashboard's whole
// query; the bucket now reads saturated.
func TestUsageBucketsSaturate(t *testing.T) {
	db, _ := openTemp(t)
	a, b := report("a", "b1", "ag", "claude", 1), report("b", "b1", "ag", "claude", 1)
	a.Counted, b.Counted = 9e18, 9e18
	mustAppend(t, db, a, b)
	buckets, err := db.UsageBuckets(context.Background(), baseTS, time.Hour)
	if err != nil || len(buckets) != 1 || buckets[0].Counted != budget.MaxCounted || buckets[0].Reports != 2 {
		t.Errorf("buckets %+v (%v), want one of 2 reports saturated at %d", buckets, err, budget.MaxCounted)
	}
	totals, err := db.Totals(context.Background())
	if err != nil || len(totals) != 1 || totals[0].Counted != budget.MaxCounted {
		t.Errorf("totals %+v (%v), want counted saturated", totals, err)
	}
}
