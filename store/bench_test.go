package store_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/store"
)

// BenchmarkAppendReports200 is the daemon's ingest of one batch: 200 new
// reports in one transaction, from one bottle (a meter's batch) or from a
// hundred. ns/op divided by 200 is the store's cost
// per report (go test -bench AppendReports -run ^$ ./store).
func BenchmarkAppendReports200(b *testing.B) {
	for _, bottles := range []int{1, 100} {
		b.Run(fmt.Sprintf("bottles=%d", bottles), func(b *testing.B) { benchAppend(b, bottles) })
	}
}

func benchAppend(b *testing.B, bottles int) {
	db, err := store.Open(context.Background(), filepath.Join(b.TempDir(), "bot-bottle.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	batch := make([]budget.Report, 200)
	n := 0
	for b.Loop() {
		for i := range batch {
			n++
			batch[i] = report(fmt.Sprintf("chatcmpl-%09d", n), fmt.Sprintf("bench-%d", n%bottles), "implementer", "claude", int64(n))
		}
		if _, err := db.AppendReports(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/report")
}
