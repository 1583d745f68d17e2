package store_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/store"
)

// at is a report of n counted tokens at baseTS+offset.
func at(id, bottle, agent, provider string, offset time.Duration, n int64) budget.Report {
	return budget.Report{ID: id, Bottle: bottle, Agent: agent, Provider: provider,
		Usage: budget.Usage{Input: n}, Complete: true, TS: baseTS.Add(offset), Counted: n}
}

func TestUsageBucketsGroupsByKeyAndStep(t *testing.T) {
	db, _ := openTemp(t)
	mustAppend(t, db,
		at("old", "b1", "impl", "claude", -time.Second, 1000), // before since
		at("r1", "b1", "impl", "claude", 0, 10),
		at("r2", "b1", "impl", "claude", 59*time.Second, 20),
		at("r3", "b1", "impl", "claude", 60*time.Second, 40),
		at("r4", "b1", "impl", "codex", 30*time.Second, 5),
		at("r5", "b2", "rev", "claude", 150*time.Second, 7),
		at("far", "b2", "rev", "claude", store.MaxBucketsSpan, 99), // past the window
	)
	got, err := db.UsageBuckets(context.Background(), baseTS, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	want := []budget.UsageBucket{
		{Bottle: "b1", Agent: "impl", Provider: "claude", Start: baseTS, Counted: 30, Reports: 2},
		{Bottle: "b1", Agent: "impl", Provider: "claude", Start: baseTS.Add(time.Minute), Counted: 40, Reports: 1},
		{Bottle: "b1", Agent: "impl", Provider: "codex", Start: baseTS, Counted: 5, Reports: 1},
		{Bottle: "b2", Agent: "rev", Provider: "claude", Start: baseTS.Add(2 * time.Minute), Counted: 7, Reports: 1},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d buckets %+v, want %d %+v", len(got), got, len(want), want)
	}
	for i := range want {
		if g, w := got[i], want[i]; g.Bottle != w.Bottle || g.Agent != w.Agent || g.Provider != w.Provider ||
			!g.Start.Equal(w.Start) || g.Counted != w.Counted || g.Reports != w.Reports {
			t.Errorf("bucket %d = %+v, want %+v", i, g, w)
		}
	}
}

func TestUsageBucketsEmptyWindow(t *testing.T) {
	db, _ := openTemp(t)
	mustAppend(t, db, at("r1", "b1", "impl", "claude", 0, 10))
	got, err := db.UsageBuckets(context.Background(), baseTS.Add(time.Hour), time.Minute)
	if err != nil || len(got) != 0 {
		t.Errorf("UsageBuckets after the last report = %+v, %v; want none, nil", got, err)
	}
}

func TestUsageBucketsRejectsBadWindow(t *testing.T) {
	db, _ := openTemp(t)
	tests := []struct {
		name  string
		since time.Time
		step  time.Duration
	}{
		{"zero step", baseTS, 0},
		{"negative step", baseTS, -time.Minute},
		{"zero since", time.Time{}, time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := db.UsageBuckets(context.Background(), tt.since, tt.step)
			if !errors.Is(err, budget.ErrInvalid) {
				t.Errorf("got %v, want ErrInvalid", err)
			}
		})
	}
}

func TestUsageBucketsOnReadOnlyStore(t *testing.T) {
	db, path := openTemp(t)
	mustAppend(t, db, at("r1", "b1", "impl", "claude", 0, 10))
	ro, err := store.OpenReadOnly(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	got, err := ro.UsageBuckets(context.Background(), baseTS, time.Minute)
	if err != nil || len(got) != 1 || got[0].Counted != 10 {
		t.Errorf("read-only UsageBuckets = %+v, %v; want one bucket of 10", got, err)
	}
}

// TestUsageBucketsReadsOnlyTheIndex checks the plan: a range on the
// covering reports_ts index, never a scan of the ledger.
func TestUsageBucketsReadsOnlyTheIndex(t *testing.T) {
	_, path := openTemp(t)
	raw, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	rows, err := raw.Query(`EXPLAIN QUERY PLAN SELECT bottle, agent, provider, (ts - ?1) / ?2 AS bucket,
		sum(counted), count(*) FROM reports WHERE ts >= ?1 AND ts < ?3
		GROUP BY bottle, agent, provider, bucket`, 1, 60, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	got := strings.Join(plan, "; ")
	if !strings.Contains(got, "COVERING INDEX reports_ts (ts>? AND ts<?)") {
		t.Errorf("plan = %q, want a range on the covering index reports_ts", got)
	}
}
