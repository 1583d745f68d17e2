package controller_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/controller"
	"github.com/bot-bottle/bottlecap/internal/testutil"
)

// BenchmarkIngestRateGuard is the core's ingest of batches of 256 reports
// over 64 bottles on the fake ledger, with no rate guard and with one on
// every bottle (never tripped): what the guard costs a report.
func BenchmarkIngestRateGuard(b *testing.B) {
	for _, guarded := range []bool{false, true} {
		b.Run(fmt.Sprintf("guarded=%v", guarded), func(b *testing.B) {
			s := budget.DefaultSettings()
			if guarded {
				s.Rate = budget.Rates{"claude": budget.MaxCounted}
			}
			f := newFakeLedger()
			clk := testutil.NewClock(rateStart)
			c, err := controller.NewCore(context.Background(), controller.Config{Ledger: f, Ingester: &fakeIngester{f: f},
				Settings: s, Now: clk.Now, AfterFunc: clk.AfterFunc})
			if err != nil {
				b.Fatal(err)
			}
			batch := make([]budget.Report, 256)
			n := 0
			for b.Loop() {
				for i := range batch {
					n++
					batch[i] = budget.Report{ID: fmt.Sprint(n), Bottle: fmt.Sprintf("b%d", n%64), Agent: "a", Provider: "claude",
						Usage: budget.Usage{Input: 100}, Counted: 100, Complete: true}
				}
				if _, err := c.Ingest(context.Background(), batch, nil); err != nil {
					b.Fatal(err)
				}
				clk.Advance(10 * time.Millisecond)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/report")
		})
	}
}
