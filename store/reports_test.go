package store_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/bot-bottle/bottlecap/budget"
)

func TestAppendReportsIsIdempotentOnID(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)

	res := mustAppend(t, db,
		report("msg_a", "b1", "impl", "claude", 10),
		report("msg_a", "b1", "impl", "claude", 10), // same batch
		report("msg_b", "b1", "impl", "claude", 20),
	)
	if got, want := dupFlags(res), ".D."; got != want {
		t.Errorf("first batch duplicates = %s, want %s", got, want)
	}
	res = mustAppend(t, db,
		report("msg_b", "b1", "impl", "claude", 20), // earlier batch
		report("msg_c", "b1", "impl", "claude", 30),
	)
	if got, want := dupFlags(res), "D."; got != want {
		t.Errorf("second batch duplicates = %s, want %s", got, want)
	}

	recent, err := db.RecentReports(ctx, "b1", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(recent) != 3 {
		t.Errorf("stored %d reports, want 3", len(recent))
	}
	totals, err := db.Totals(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := report("x", "b1", "impl", "claude", 60) // 10+20+30
	if len(totals) != 1 {
		t.Fatalf("Totals = %+v, want one", totals)
	}
	if got := totals[0]; got.Usage != want.Usage || got.Counted != want.Counted || got.Reports != 3 {
		t.Errorf("total = %+v, want usage %+v counted %d reports 3", got, want.Usage, want.Counted)
	}
	if got, want := totals[0].LastTS, baseTS.Add(30e9); !got.Equal(want) {
		t.Errorf("LastTS = %v, want %v", got, want)
	}
}

func TestAppendReportsRejectsInvalid(t *testing.T) {
	tests := []struct {
		name string
		r    budget.Report
	}{
		{"no id", budget.Report{Bottle: "b1"}},
		{"no bottle", budget.Report{ID: "msg_1"}},
		{"negative output", budget.Report{ID: "msg_1", Bottle: "b1", Usage: budget.Usage{Output: -1}}},
		{"negative counted", budget.Report{ID: "msg_1", Bottle: "b1", Counted: -1}},
	}
	db, _ := openTemp(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := db.AppendReports(context.Background(), []budget.Report{tt.r})
			if !errors.Is(err, budget.ErrInvalid) {
				t.Errorf("got %v, want ErrInvalid", err)
			}
		})
	}
}

// TestTotalsEqualARecount appends random batches (with duplicates) and
// checks every aggregate against a sum over the stored reports.
func TestTotalsEqualARecount(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	rng := rand.New(rand.NewPCG(1, 2))
	bottles, agents, providers := []string{"b1", "b2", "b3"}, []string{"", "impl", "rev"}, []string{"claude", "codex"}
	for batch := 0; batch < 20; batch++ {
		var reports []budget.Report
		for i := 0; i < 25; i++ {
			reports = append(reports, report(fmt.Sprintf("msg_%d", rng.IntN(300)),
				bottles[rng.IntN(3)], agents[rng.IntN(3)], providers[rng.IntN(2)], rng.Int64N(1000)))
		}
		mustAppend(t, db, reports...)
	}

	want := map[[3]string]budget.Total{}
	for _, b := range bottles {
		recent, err := db.RecentReports(ctx, b, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recent {
			k := [3]string{r.Bottle, r.Agent, r.Provider}
			w := want[k]
			w.Usage, w.Counted, w.Reports = w.Usage.Add(r.Usage), w.Counted+r.Counted, w.Reports+1
			want[k] = w
		}
	}
	totals, err := db.Totals(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(totals) != len(want) {
		t.Errorf("%d totals, want %d", len(totals), len(want))
	}
	for _, got := range totals {
		w := want[[3]string{got.Bottle, got.Agent, got.Provider}]
		if got.Usage != w.Usage || got.Counted != w.Counted || got.Reports != w.Reports {
			t.Errorf("total %s/%s/%s = %+v %d %d, recount %+v %d %d", got.Bottle, got.Agent, got.Provider,
				got.Usage, got.Counted, got.Reports, w.Usage, w.Counted, w.Reports)
		}
	}
}

func TestRecentReportsNewestFirst(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	mustAppend(t, db, report("m1", "b1", "a", "claude", 1), report("m2", "b2", "a", "claude", 2))
	mustAppend(t, db, report("m3", "b1", "a", "claude", 3))

	got, err := db.RecentReports(ctx, "b1", 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != "m3" || got[1].ID != "m1" {
		t.Fatalf("RecentReports(b1) = %+v, want m3, m1", got)
	}
	if want := report("m3", "b1", "a", "claude", 3); got[0] != want {
		t.Errorf("round trip = %+v, want %+v", got[0], want)
	}
	if got, _ := db.RecentReports(ctx, "b1", 1); len(got) != 1 {
		t.Errorf("limit 1 gave %d reports", len(got))
	}
}
