package simhost

import (
	"fmt"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/tui"
)

// FleetSlug is the slug of bottle i of a Fleet.
func FleetSlug(i int) string { return fmt.Sprintf("bottle-%05d", i) }

// FleetProviders are the providers every Fleet bottle's agent reports on.
var FleetProviders = []string{"claude", "codex"}

// Fleet is a large host as the dashboard reads it: n bottles in trees of
// up to ten (a root with three children, each with two), one agent each
// reporting on two providers, budgets at every scope and recent usage. It
// is deterministic, so the dashboard's frame and query benchmarks and the
// load tests measure the same host every run.
func Fleet(n int, now time.Time) tui.Input {
	s := budget.DefaultSettings()
	s.Budget = budget.Limits{"claude": budget.Lifetime(500_000_000), "codex": budget.Lifetime(200_000_000)}
	in := tui.Input{Now: now, Settings: s}
	for i := range n {
		slug := FleetSlug(i)
		b := budget.Bottle{Slug: slug, Agent: "agent", Parent: fleetParent(i), State: budget.Active}
		if i%3 == 0 {
			b.Budget = budget.Limits{"claude": budget.Lifetime(int64(1_000_000 + i*1000))}
		}
		in.Bottles = append(in.Bottles, b)
		for j, p := range FleetProviders {
			used := int64((i*7919+j*104729)%900_000 + 1000)
			in.Totals = append(in.Totals, budget.Total{Bottle: slug, Agent: "agent", Provider: p, Counted: used, Reports: used / 1000})
			in.Buckets = append(in.Buckets, budget.UsageBucket{Bottle: slug, Agent: "agent", Provider: p,
				Start: now.Add(-time.Duration(1+i%5) * time.Minute), Counted: used / 50})
		}
	}
	return in
}

// fleetParent is bottle i's parent in its tree of ten: 0 is the root, 1–3
// its children, 4–9 two under each child.
func fleetParent(i int) string {
	switch i % 10 {
	case 1, 2, 3:
		return FleetSlug(i - i%10)
	case 4, 5, 6, 7, 8, 9:
		return FleetSlug(i - i%10 + 1 + (i%10-4)/2)
	}
	return ""
}
