package budget_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
)

// The gate's own cost, in memory, without the socket: with a lifetime
// global budget and with the same budget as day and month windows. The
// windowed one must stay close (window_verdict_p99_us measures the whole
// gate over the socket).

func benchBook(b *testing.B, global string) (*budget.Book, []string) {
	b.Helper()
	set, err := budget.ParseLimitSet(global)
	if err != nil {
		b.Fatal(err)
	}
	s := budget.DefaultSettings()
	s.Budget = budget.Limits{"claude": set}
	book := budget.NewBook(s)
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	slugs := make([]string, 100)
	for i := range slugs {
		slugs[i] = fmt.Sprintf("bench-%03d", i)
		book.Record(budget.Report{Bottle: slugs[i], Agent: "impl", Provider: "claude", Counted: 1000, TS: now})
	}
	return book, slugs
}

func BenchmarkVerdictLifetime(b *testing.B) {
	book, slugs := benchBook(b, "1000G")
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		book.Verdict(slugs[i%len(slugs)], "impl", "claude", 0)
	}
}

func BenchmarkVerdictDayAndMonth(b *testing.B) {
	book, slugs := benchBook(b, "1000G/day+1000G/month")
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		book.Verdict(slugs[i%len(slugs)], "impl", "claude", 0)
	}
}

// BenchmarkVerdictNamedBottles is the gate for registered bottles whose
// limit comes from the settings for their name, beside a registration's
// limit for another provider: the limit in force is resolved when a
// source changes, not per verdict.
func BenchmarkVerdictNamedBottles(b *testing.B) {
	s := budget.DefaultSettings()
	s.Bottles["dev"] = budget.Defaults{Budget: budget.Limits{"claude": budget.Lifetime(1_000_000_000)}}
	book := budget.NewBook(s)
	slugs := make([]string, 100)
	for i := range slugs {
		slugs[i] = fmt.Sprintf("bench-%03d", i)
		bt := budget.Bottle{Slug: slugs[i], Name: "dev", Agent: "impl", Budget: budget.Limits{"codex": budget.Lifetime(1000)}}
		if err := book.Register(bt); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		book.Verdict(slugs[i%len(slugs)], "impl", "claude", 0)
	}
}

// BenchmarkVerdictFleet is the gate with a fleet budget above the global
// one (SPEC section 14): day and month fleet limits, a read of Postgres
// and a live lease, every verdict weighing the fleet's room as known and
// the lease's.
func BenchmarkVerdictFleet(b *testing.B) {
	book, slugs := benchBook(b, "1000G")
	fleet, err := budget.ParseLimitSet("1000G/day+1000G/month")
	if err != nil {
		b.Fatal(err)
	}
	s := book.Settings()
	s.Fleet = &budget.Fleet{Budget: budget.Limits{"claude": fleet}}
	book.SetSettings(s)
	book.SetFleetKnown("claude", budget.FleetKnown{Windows: []budget.FleetWindowUse{
		{Window: budget.DayWindow, Used: 1_000_000}, {Window: budget.MonthWindow, Used: 9_000_000}}, OwnShipped: 50_000})
	book.SetFleetLease("claude", budget.FleetLease{Ceiling: 10_000_000, Live: true})
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if v := book.Verdict(slugs[i%len(slugs)], "impl", "claude", 0); !v.Allowed {
			b.Fatalf("denied: %s", v.Reason)
		}
	}
}
