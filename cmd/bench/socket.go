package main

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/client"
	"github.com/bot-bottle/bottlecap/simhost"
)

func init() { register("socket", benchSocket) }

const (
	socketClients      = 64
	singlesPerClient   = 400 // 25,600 single reports per run
	singleRuns         = 3
	batchesPerClient   = 40 // 256,000 reports in batches of 100
	batchSize          = 100
	verdictsPerClient  = 3_000
	socketBenchBottles = 100
)

// benchSocket measures the real daemon process over its unix socket with 64
// concurrent clients: acknowledged single reports, NDJSON batches of 100,
// and the gate's latency and throughput. The raw SQLite rate is measured
// again beside it so the batch ratio compares numbers from one run.
func benchSocket(ctx context.Context, r *runner) error {
	d, err := startProcDaemon(ctx, r, "budget:\n  claude: 1000G # a budget to resolve, never exhausted\n")
	if err != nil {
		return err
	}
	defer d.stop()
	// Single reports are fast to send and short to measure, so one run
	// swings with whatever else the machine does; the median of a few
	// counts.
	var singles []float64
	for i := range singleRuns {
		rate, err := ingestOverSocket(ctx, d.sock, fmt.Sprintf("s%d", i), singlesPerClient, 1)
		if err != nil {
			return fmt.Errorf("single reports: %w", err)
		}
		singles = append(singles, rate)
	}
	slices.Sort(singles)
	r.report("socket_single_reports_per_s", round(singles[len(singles)/2]), "reports/s")
	batched, err := ingestOverSocket(ctx, d.sock, "n", batchesPerClient, batchSize)
	if err != nil {
		return fmt.Errorf("batched reports: %w", err)
	}
	r.report("socket_batch100_reports_per_s", round(batched), "reports/s")
	dir, err := r.tempDir("socket")
	if err != nil {
		return err
	}
	raw, err := rawInsertRate(ctx, filepath.Join(dir, "raw.db"))
	if err != nil {
		return err
	}
	r.report("socket_batch100_vs_raw_ratio", round3(batched/raw), "ratio")
	return benchVerdicts(ctx, d.sock, r)
}

// ingestOverSocket runs 64 clients, each sending rounds requests of size
// reports and waiting for every acknowledgement; it returns reports/s.
func ingestOverSocket(ctx context.Context, sock, prefix string, rounds, size int) (float64, error) {
	var failed atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for i := range socketClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := client.New(sock)
			defer c.Close()
			for n := range rounds {
				if _, err := c.Ingest(ctx, socketReports(prefix, i, n, size)); err != nil {
					failed.Store(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		return 0, err
	}
	return float64(socketClients*rounds*size) / time.Since(start).Seconds(), nil
}

// socketReports are client clientN's reports of one round: bottle
// bench-(clientN*7+k mod 100) for report k.
func socketReports(prefix string, clientN, round, size int) []api.Report {
	return simhost.WireReports(fmt.Sprintf("%s-%02d-%05d", prefix, clientN, round), size, func(k int) string {
		return fmt.Sprintf("bench-%03d", (clientN*7+k)%socketBenchBottles)
	})
}

// perBottleLoad sends each of n bottles, named slug(i), perBottle
// reports in one request with ids from ids(i), from workers goroutines,
// each with the client connect gives it (and releases with the func it
// returns).
type perBottleLoad struct {
	n, perBottle, workers int
	slug, ids             func(i int) string
	connect               func() (*client.Client, func())
}

func (l perBottleLoad) send(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make(chan error, l.workers)
	for w := range l.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, release := l.connect()
			defer release()
			for i := w; i < l.n; i += l.workers {
				s := l.slug(i)
				if _, err := c.Ingest(ctx, simhost.WireReports(l.ids(i), l.perBottle, func(int) string { return s })); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// benchVerdicts measures the gate from 64 concurrent clients twice: first
// flat out, which gives the throughput (and, by Little's law, a latency
// that is only the queue of 64 callers on two cores); then with each client
// pacing its calls so that together they offer a quarter of that
// throughput, which gives the latency a caller sees under heavy but
// sustainable load — the figure the gate's callers live with.
func benchVerdicts(ctx context.Context, sock string, r *runner) error {
	start := time.Now()
	saturated, err := verdictLoad(ctx, sock, verdictsPerClient, 0)
	if err != nil {
		return err
	}
	perS := float64(len(saturated)) / time.Since(start).Seconds()
	r.report("verdict_per_s", round(perS), "verdicts/s")
	r.report("verdict_saturated_p99_us", round(us(percentile(saturated, 99))), "us")
	interval := time.Duration(float64(time.Second) * socketClients / (perS / 8))
	pacedVerdictInterval = interval
	r.logf("verdict latency: 64 clients, one call every %s each (%.0f/s offered)", interval, perS/8)
	// The 64 clients stand for 64 sidecar processes, each with a small heap
	// of its own; sharing one heap here, at the default GOGC they would stop
	// for collections far more often than any sidecar does, and the figure
	// would measure this process's collector rather than the gate.
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	paced, err := verdictLoad(ctx, sock, verdictsPerClient/4, interval)
	if err != nil {
		return err
	}
	r.report("verdict_p50_us", round(us(percentile(paced, 50))), "us")
	r.report("verdict_p99_us", round(us(percentile(paced, 99))), "us")
	return nil
}

// pacedVerdictInterval is the pace benchVerdicts offered its paced load
// at, so that later benchmarks in the same run can offer the same load.
var pacedVerdictInterval time.Duration

// verdictLoad runs 64 clients making n gate calls each, every interval (0:
// back to back), and returns every call's latency, sorted. Client i asks
// about bottle bench-(i mod 100).
func verdictLoad(ctx context.Context, sock string, n int, interval time.Duration) ([]time.Duration, error) {
	return verdictLoadOn(ctx, sock, n, interval, func(i, _ int) string { return fmt.Sprintf("bench-%03d", i%socketBenchBottles) })
}

// verdictLoadOn is verdictLoad with call k of client i asking about bottle
// pick(i, k).
func verdictLoadOn(ctx context.Context, sock string, n int, interval time.Duration, pick func(i, k int) string) ([]time.Duration, error) {
	lat := make([][]time.Duration, socketClients)
	var failed atomic.Value
	var wg sync.WaitGroup
	for i := range socketClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := client.New(sock)
			defer c.Close()
			q := client.VerdictQuery{Agent: "impl", Provider: "claude"}
			// Spread the clients' first calls over one interval.
			next := time.Now().Add(time.Duration(i) * interval / socketClients)
			for k := range n {
				q.Bottle = pick(i, k)
				time.Sleep(time.Until(next))
				next = next.Add(interval)
				t0 := time.Now()
				if _, err := c.Verdict(ctx, q); err != nil {
					failed.Store(err)
					return
				}
				lat[i] = append(lat[i], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		return nil, err
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	return all, nil
}

// percentile of sorted latencies.
func percentile(sorted []time.Duration, p int) time.Duration {
	return sorted[min(len(sorted)*p/100, len(sorted)-1)]
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
