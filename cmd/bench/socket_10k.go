package main

import (
	"context"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/bot-bottle/bottlecap/client"
)

func init() { register("bottles10k", benchBottles10k) }

const (
	manyBottles          = 10_000
	manyReportsPerBottle = 20
	manyIngestClients    = 16
)

// benchBottles10k (in a file named to run after socket.go) runs the real daemon with 10,000 bottles registered by
// their own reports (implicitly, as sidecars of unregistered bottles do),
// then reads its resident memory and measures the gate under the load the
// socket benchmark's verdict_p99_us was measured under (the same pace when
// it ran first in this run), each call asking about another of the 10,000.
func benchBottles10k(ctx context.Context, r *runner) error {
	d, err := startProcDaemon(ctx, r, "budget:\n  claude: 1000G # a budget to resolve, never exhausted\n")
	if err != nil {
		return err
	}
	defer d.stop()
	start := time.Now()
	if err := reportFromManyBottles(ctx, d.sock); err != nil {
		return err
	}
	r.logf("10,000 bottles registered by %d reports in %s", manyBottles*manyReportsPerBottle, time.Since(start).Round(time.Millisecond))
	rss, err := residentMB(d.cmd.Process.Pid)
	if err != nil {
		return err
	}
	r.report("daemon_rss_mb_10k_bottles", round3(rss), "MB")

	pick := func(i, k int) string { return fmt.Sprintf("many-%05d", (i*157+k*64)%manyBottles) }
	interval := pacedVerdictInterval
	if interval == 0 { // the socket benchmark did not run: find the pace here
		t0 := time.Now()
		saturated, err := verdictLoadOn(ctx, d.sock, verdictsPerClient, 0, pick)
		if err != nil {
			return err
		}
		interval = time.Duration(float64(time.Second) * socketClients / (float64(len(saturated)) / time.Since(t0).Seconds() / 8))
	}
	r.logf("verdict latency with 10,000 bottles: one call every %s per client", interval)
	defer debug.SetGCPercent(debug.SetGCPercent(400)) // as benchVerdicts, for the same reason
	paced, err := verdictLoadOn(ctx, d.sock, verdictsPerClient/4, interval, pick)
	if err != nil {
		return err
	}
	r.report("verdict_p99_us_10k_bottles", round(us(percentile(paced, 99))), "us")
	return nil
}

// reportFromManyBottles sends each of the 10,000 bottles its reports in
// one request, from 16 clients, so each bottle is registered by its first
// report.
func reportFromManyBottles(ctx context.Context, sock string) error {
	return perBottleLoad{n: manyBottles, perBottle: manyReportsPerBottle, workers: manyIngestClients,
		slug: func(i int) string { return fmt.Sprintf("many-%05d", i) },
		ids:  func(i int) string { return fmt.Sprintf("many%05d-00-00000", i) },
		connect: func() (*client.Client, func()) {
			c := client.New(sock, client.WithRetry(20*time.Second))
			return c, func() { c.Close() }
		},
	}.send(ctx)
}
