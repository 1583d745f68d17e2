package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/client"
)

func init() { register("rss", benchRSS) }

const (
	rssBottles          = 1000
	rssReportsPerBottle = 20
)

// benchRSS runs the real daemon binary, registers 1,000 bottles in a parent
// forest with budgets, has each report usage, and reads the daemon's
// resident memory from /proc.
func benchRSS(ctx context.Context, r *runner) error {
	d, err := startProcDaemon(ctx, r, "")
	if err != nil {
		return err
	}
	defer d.stop()
	c := client.New(d.sock, client.WithRetry(20*time.Second))
	defer c.Close()
	if err := populate(ctx, c); err != nil {
		return err
	}
	rss, err := residentMB(d.cmd.Process.Pid)
	if err != nil {
		return err
	}
	r.report("daemon_rss_mb_1000_bottles", round3(rss), "MB")
	return nil
}

// populate registers the bottles (every tenth one a parent of the next
// nine) and sends their reports from 16 clients.
func populate(ctx context.Context, c *client.Client) error {
	for i := range rssBottles {
		req := api.BottleRequest{Agent: "impl", Budget: budget.Limits{"claude": budget.Lifetime(5_000_000)}}
		if i%10 != 0 {
			req.Parent = fmt.Sprintf("rss-%04d", i-i%10)
		}
		if _, err := c.PutBottle(ctx, fmt.Sprintf("rss-%04d", i), req); err != nil {
			return err
		}
	}
	return perBottleLoad{n: rssBottles, perBottle: rssReportsPerBottle, workers: 16,
		slug:    func(i int) string { return fmt.Sprintf("rss-%04d", i) },
		ids:     func(i int) string { return fmt.Sprintf("rss%04d-00-00000", i) },
		connect: func() (*client.Client, func()) { return c, func() {} }, // one shared client
	}.send(ctx)
}

// residentMB reads VmRSS of a process, in MB.
func residentMB(pid int) (float64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}
