package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/simhost"
	"github.com/bot-bottle/bottlecap/store"
	"github.com/bot-bottle/bottlecap/tui"
)

func init() { register("dash", benchDash) }

const (
	dashBottles   = 1_000              // registered bottles, in trees of ten
	dashHistory   = 7 * 24 * time.Hour // the 1M reports are spread over a week
	dashHotExtra  = 100_000            // then this many more in the last half hour
	dashHotWindow = 30 * time.Minute
	dashFrames    = 5 // dashFrame runs, each already the median of 7 frames
	dashLoads     = 9 // snapshot loads per query figure
)

// benchDash measures one dashboard frame with 1,000 bottles and the store
// queries behind one snapshot (everything StoreSource.Load runs) on a
// ledger of 1,000,000 reports made over a week: the figure an operator
// meets. It also reports the query with 100,000 more reports in the last
// half hour, the worst case for the windowed burn-rate query.
func benchDash(ctx context.Context, r *runner) error {
	frames := make([]time.Duration, 0, dashFrames)
	for range dashFrames {
		d, err := dashFrame(dashBottles)
		if err != nil {
			return err
		}
		frames = append(frames, d)
	}
	r.report("dash_frame_1000_ms", dashMs(dashMedian(frames)), "ms")

	dir, err := r.tempDir("dash")
	if err != nil {
		return err
	}
	path := filepath.Join(dir, "bot-bottle.db")
	now := time.Now()
	start := time.Now()
	if err := fillDashLedger(ctx, path, now); err != nil {
		return fmt.Errorf("fill the dashboard's ledger: %w", err)
	}
	r.logf("dash: filled %d reports for %d bottles in %s", bigLedger, dashBottles, time.Since(start).Round(time.Millisecond))
	q, err := dashQuery(ctx, dir, path)
	if err != nil {
		return err
	}
	r.report("dash_query_1m_ms", dashMs(q), "ms")

	if err := appendDashReports(ctx, path, dashHotExtra, bigLedger, time.Now(), dashHotWindow); err != nil {
		return err
	}
	if q, err = dashQuery(ctx, dir, path); err != nil {
		return err
	}
	r.report("dash_query_1m_hot_ms", dashMs(q), "ms")
	return nil
}

// dashQuery opens the ledger read-only as `bottlecap dash` does and returns
// the median time of a full snapshot load.
func dashQuery(ctx context.Context, dir, path string) (time.Duration, error) {
	db, err := store.OpenReadOnly(ctx, path)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	settings := filepath.Join(dir, "settings.yml")
	if err := os.WriteFile(settings, []byte("budget:\n  claude: 500M\n  codex: 200M\n"), 0o600); err != nil {
		return 0, err
	}
	src := tui.NewStoreSource(db, settings, db, nil)
	times := make([]time.Duration, 0, dashLoads)
	for range dashLoads {
		start := time.Now()
		snap, err := src.Load(ctx, "")
		if err != nil {
			return 0, err
		}
		times = append(times, time.Since(start))
		if len(snap.Rows) != dashBottles {
			return 0, fmt.Errorf("snapshot has %d rows, want %d", len(snap.Rows), dashBottles)
		}
	}
	return dashMedian(times), nil
}

// fillDashLedger registers the bottles of simhost.Fleet, then appends
// a million reports spread over the past week through AppendReports in
// large batches, plus some finished actions and audit entries.
func fillDashLedger(ctx context.Context, path string, now time.Time) error {
	if err := seedDashLedger(ctx, path, now); err != nil {
		return err
	}
	return appendDashReports(ctx, path, bigLedger, 0, now, dashHistory)
}

// seedDashLedger registers the bottles and records some finished actions.
func seedDashLedger(ctx context.Context, path string, now time.Time) error {
	db, err := store.Open(ctx, path, store.WithSynchronousNormal())
	if err != nil {
		return err
	}
	defer db.Close()
	for _, b := range simhost.Fleet(dashBottles, now).Bottles {
		if err := db.PutBottle(ctx, b); err != nil {
			return err
		}
	}
	for i := range 50 {
		slug := simhost.FleetSlug(i * 20)
		if _, err := db.CreateAction(ctx, budget.Action{Bottle: slug, Kind: budget.ActCutoff, Reason: "bench", Status: budget.StatusDone}); err != nil {
			return err
		}
		if _, err := db.AppendAudit(ctx, budget.AuditEntry{Kind: "action_done", Bottle: slug, Detail: "cutoff after 1 attempt(s)"}); err != nil {
			return err
		}
	}
	return nil
}

// appendDashReports appends n reports numbered from first, with times
// spread evenly over the span before now, in batches of bigBatch. Each
// bottle's agent reports on two providers, the shape of
// simhost.Fleet, so the frame and the query measure the same host.
func appendDashReports(ctx context.Context, path string, n, first int, now time.Time, span time.Duration) error {
	db, err := store.Open(ctx, path, store.WithSynchronousNormal())
	if err != nil {
		return err
	}
	defer db.Close()
	batch := make([]budget.Report, 0, bigBatch)
	for i := range n {
		r := simhost.Report()
		k := first + i
		r.ID = fmt.Sprintf("msg_bench_%08d", k)
		r.Bottle, r.Agent = simhost.FleetSlug(k%dashBottles), "agent"
		r.Provider = simhost.FleetProviders[k/dashBottles%2]
		r.Host = simhost.Hosts[r.Provider]
		r.TS = now.Add(-span + time.Duration(float64(span)*float64(i)/float64(n)))
		batch = append(batch, r)
		if len(batch) == cap(batch) || i == n-1 {
			if _, err := db.AppendReports(ctx, batch); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	return nil
}

// dashMedian is the median of ds (sorted in place).
func dashMedian(ds []time.Duration) time.Duration {
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[len(ds)/2]
}

// dashMs is a duration in milliseconds with two decimals.
func dashMs(d time.Duration) float64 {
	return float64(d.Round(10*time.Microsecond)) / float64(time.Millisecond)
}
