package controller_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/controller"
)

// BenchmarkCoreVerdict is the gate's answer from the core over 64
// bottles under a global budget: what a verdict costs, allocations
// included (the histogram that times it must add none).
func BenchmarkCoreVerdict(b *testing.B) {
	s := budget.DefaultSettings()
	s.Budget = budget.Limits{"claude": budget.Lifetime(budget.MaxCounted)}
	f := newFakeLedger()
	c, err := controller.NewCore(context.Background(), controller.Config{Ledger: f, Ingester: &fakeIngester{f: f}, Settings: s})
	if err != nil {
		b.Fatal(err)
	}
	var batch []budget.Report
	for i := range 64 {
		batch = append(batch, budget.Report{ID: fmt.Sprint(i), Bottle: fmt.Sprintf("b%d", i), Agent: "a", Provider: "claude",
			Usage: budget.Usage{Input: 100}, Counted: 100, Complete: true})
	}
	if _, err := c.Ingest(context.Background(), batch, nil); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		c.Verdict(batch[i%64].Bottle, "a", "claude", 1000)
	}
}
