package tui

import (
	"context"
	"fmt"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/store"
)

// BenchFrame measures one dashboard frame with n bottles, for `make bench`
// (dash_frame_1000_ms): computing the snapshot from the store's rows
// (verdicts, governing scopes, burn rates, tree) and rendering the table
// at 200×60. The store query itself is measured separately
// (dash_query_1m_ms). It returns the median of a few frames.
func BenchFrame(n int) (time.Duration, error) {
	if n <= 0 {
		return 0, fmt.Errorf("bench frame: n = %d, want > 0", n)
	}
	in := SyntheticInput(n, time.Date(2026, 11, 21, 20, 0, 0, 0, time.UTC))
	m := NewModel(context.Background(), Options{Source: staticSource{}, Now: func() time.Time { return in.Now }})
	m.Update(tea.WindowSizeMsg{Width: 200, Height: 60})
	const frames = 7
	times := make([]time.Duration, 0, frames)
	for range frames {
		start := time.Now()
		snap := Build(in)
		if len(snap.Rows) != n {
			return 0, fmt.Errorf("bench frame: %d rows, want %d", len(snap.Rows), n)
		}
		m.Update(snapshotMsg{snap: snap})
		_ = m.View()
		times = append(times, time.Since(start))
	}
	return median(times), nil
}

func median(ds []time.Duration) time.Duration {
	for i := 1; i < len(ds); i++ {
		for j := i; j > 0 && ds[j] < ds[j-1]; j-- {
			ds[j], ds[j-1] = ds[j-1], ds[j]
		}
	}
	return ds[len(ds)/2]
}

// staticSource serves nothing; the benchmark feeds snapshots directly.
type staticSource struct{}

// Load returns an empty snapshot.
func (staticSource) Load(context.Context, string) (Snapshot, error) { return Snapshot{}, nil }

// SyntheticInput is a host with n bottles in trees of up to ten (a root
// with three children, each with two), two agents and two providers each,
// budgets at every scope and recent usage: the benchmark's and load tests'
// data set.
func SyntheticInput(n int, now time.Time) Input {
	s := budget.DefaultSettings()
	s.Budget = budget.Limits{"claude": 500_000_000, "codex": 200_000_000}
	in := Input{Now: now, Settings: s}
	for i := range n {
		slug, parent := fmt.Sprintf("bottle-%05d", i), ""
		switch i % 10 {
		case 1, 2, 3:
			parent = fmt.Sprintf("bottle-%05d", i-i%10)
		case 4, 5, 6, 7, 8, 9:
			parent = fmt.Sprintf("bottle-%05d", i-i%10+1+(i%10-4)/2)
		}
		b := budget.Bottle{Slug: slug, Agent: "agent", Parent: parent, State: budget.Active}
		if i%3 == 0 {
			b.Budget = budget.Limits{"claude": int64(1_000_000 + i*1000)}
		}
		in.Bottles = append(in.Bottles, b)
		for j, p := range []string{"claude", "codex"} {
			used := int64((i*7919+j*104729)%900_000 + 1000)
			in.Totals = append(in.Totals, store.Total{Bottle: slug, Agent: "agent", Provider: p, Counted: used, Reports: used / 1000})
			in.Buckets = append(in.Buckets, UsageBucket{Bottle: slug, Agent: "agent", Provider: p,
				Start: now.Add(-time.Duration(1+i%5) * time.Minute), Counted: used / 50})
		}
	}
	return in
}
