package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/client"
	"github.com/bot-bottle/bottlecap/controller"
	"github.com/bot-bottle/bottlecap/daemon"
	"github.com/bot-bottle/bottlecap/store"
)

func init() { register("window", benchWindow) }

// The settings the gate is measured under: the socket benchmark's host
// (one global budget, never exhausted, over bottles registered by their
// reports), for the bottle's life and with day and month windows.
const (
	lifetimeSettings = "budget:\n  claude: 1000G # a budget to resolve, never exhausted\n"
	windowSettings   = "budget:\n  claude: [1000G/day, 1000G/month] # windows to resolve, never exhausted\n"
	// windowVerdictRounds alternate the two daemons (lifetime, window,
	// window, lifetime), so drift in the machine's load weighs on both.
	windowVerdictRounds = 2

	rolloverBottles = 1_000
	rolloverBudget  = 1_000 // tokens a day
	rolloverWait    = 2 * time.Minute
)

// benchWindow measures the gate with every budget windowed beside the
// same gate with lifetime budgets, and how soon a day's end restores the
// bottles the day's budget cut off.
func benchWindow(ctx context.Context, r *runner) error {
	if err := benchWindowVerdicts(ctx, r); err != nil {
		return fmt.Errorf("window verdicts: %w", err)
	}
	if err := benchRollover(ctx, r); err != nil {
		return fmt.Errorf("window rollover: %w", err)
	}
	if err := benchWindowStart(ctx, r); err != nil {
		return fmt.Errorf("window start: %w", err)
	}
	return nil
}

// benchWindowVerdicts runs two daemon processes, one with the socket
// benchmark's lifetime budget and one with that budget as day and month
// windows, fills both the same way, and measures their gates in turns
// exactly as benchVerdicts measures verdict_p99_us: 64 clients offering a
// quarter of the gate's throughput (the same pace as the socket benchmark
// when it ran first in this run).
func benchWindowVerdicts(ctx context.Context, r *runner) error {
	life, err := startProcDaemon(ctx, r, lifetimeSettings)
	if err != nil {
		return err
	}
	defer life.stop()
	win, err := startProcDaemon(ctx, r, windowSettings)
	if err != nil {
		return err
	}
	defer win.stop()
	for _, d := range []*procDaemon{life, win} {
		if _, err := ingestOverSocket(ctx, d.sock, "w", batchesPerClient/4, batchSize); err != nil {
			return fmt.Errorf("fill: %w", err)
		}
	}
	interval, err := verdictPace(ctx, life.sock)
	if err != nil {
		return err
	}
	r.logf("window verdicts: 64 clients, one call every %s each", interval)
	defer debug.SetGCPercent(debug.SetGCPercent(400)) // as benchVerdicts, for the same reason
	p99 := map[*procDaemon][]float64{}
	for i := range 2 * windowVerdictRounds {
		d := []*procDaemon{life, win, win, life}[i%4]
		paced, err := verdictLoad(ctx, d.sock, verdictsPerClient/4, interval)
		if err != nil {
			return err
		}
		p99[d] = append(p99[d], us(percentile(paced, 99)))
	}
	lifeP99, winP99 := mean(p99[life]), mean(p99[win])
	r.logf("verdict p99 in turns: lifetime %v us, windowed %v us", p99[life], p99[win])
	r.report("window_verdict_p99_us", round(winP99), "us")
	r.report("window_vs_lifetime_verdict_p99_ratio", round3(winP99/lifeP99), "ratio")
	return nil
}

// verdictPace is the socket benchmark's pace when it ran in this run,
// else found here as it finds it: a quarter of the saturated throughput.
func verdictPace(ctx context.Context, sock string) (time.Duration, error) {
	if pacedVerdictInterval > 0 {
		return pacedVerdictInterval, nil
	}
	t0 := time.Now()
	saturated, err := verdictLoad(ctx, sock, verdictsPerClient, 0)
	if err != nil {
		return 0, err
	}
	perS := float64(len(saturated)) / time.Since(t0).Seconds()
	return time.Duration(float64(time.Second) * socketClients / (perS / 8)), nil
}

func mean(xs []float64) float64 {
	var sum float64
	for _, x := range xs {
		sum += x
	}
	return sum / float64(len(xs))
}

// benchRollover cuts off 1,000 bottles with a daily budget on an
// in-process daemon whose clock stands at noon, then moves the clock to
// midnight and times from the move until the last of them is restored
// (its restore journaled, done by the enforcer and its state saved
// active): the daemon's own timer at the boundary does all of it.
func benchRollover(ctx context.Context, r *runner) error {
	noon := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	clk := newBenchClock(noon)
	enf := &countingEnforcer{}
	dir, err := os.MkdirTemp("", "bcw") // short: unix socket paths are limited
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "run", "bottlecap.sock")
	d, err := daemon.Start(ctx, daemon.Config{Socket: sock, DBPath: filepath.Join(dir, "bot-bottle.db"), Home: dir,
		Settings: budget.DefaultSettings(), Enforcer: func(*store.DB) controller.Enforcer { return enf },
		Now: clk.Now, AfterFunc: clk.AfterFunc})
	if err != nil {
		return err
	}
	defer func() {
		stop, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		d.Stop(stop)
	}()
	t0 := time.Now()
	if err := cutOffDaily(ctx, sock, enf); err != nil {
		return err
	}
	r.logf("%d bottles cut off by their day in %s", rolloverBottles, time.Since(t0).Round(time.Millisecond))
	start := time.Now()
	clk.Set(noon.Add(12 * time.Hour))
	if err := enf.await(ctx, budget.ActRestore, rolloverBottles); err != nil {
		return err
	}
	r.report("window_rollover_ms", round3(msOf(time.Since(start))), "ms")
	return nil
}

// cutOffDaily registers the bottles with a daily budget and sends each
// the report that exhausts it, then waits for every cutoff to be done.
func cutOffDaily(ctx context.Context, sock string, enf *countingEnforcer) error {
	day := budget.Limits{"claude": {{Tokens: rolloverBudget, Window: budget.DayWindow}}}
	var wg sync.WaitGroup
	errs := make(chan error, manyIngestClients)
	for w := range manyIngestClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := client.New(sock)
			defer c.Close()
			for i := w; i < rolloverBottles; i += manyIngestClients {
				slug := fmt.Sprintf("day-%04d", i)
				if _, err := c.PutBottle(ctx, slug, api.BottleRequest{Agent: "impl", Budget: day}); err != nil {
					errs <- err
					return
				}
				rep := api.Report{Report: budget.Report{ID: "x-" + slug, Bottle: slug, Agent: "impl", Provider: "claude",
					Usage: budget.Usage{Input: rolloverBudget}, Complete: true}}
				if _, err := c.Ingest(ctx, []api.Report{rep}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	return enf.await(ctx, budget.ActCutoff, rolloverBottles)
}

// countingEnforcer does every action at once, touching no container, and
// counts the actions of each kind done, so a benchmark can wait for the
// last without polling the daemon.
type countingEnforcer struct {
	mu   sync.Mutex
	done map[budget.ActionKind]int
	cond chan struct{} // closed and replaced whenever a count moves
}

var _ controller.Enforcer = (*countingEnforcer)(nil)

// Submit finishes the job (the daemon journals the outcome and saves the
// bottle's state inside Finished) and then counts it.
func (e *countingEnforcer) Submit(job controller.Job) {
	go func() {
		job.Finished(1, nil)
		e.mu.Lock()
		defer e.mu.Unlock()
		if e.done == nil {
			e.done = map[budget.ActionKind]int{}
		}
		e.done[job.Action.Kind]++
		if e.cond != nil {
			close(e.cond)
			e.cond = nil
		}
	}()
}

// await waits until n actions of kind are done.
func (e *countingEnforcer) await(ctx context.Context, kind budget.ActionKind, n int) error {
	timeout := time.After(rolloverWait)
	for {
		e.mu.Lock()
		if e.done[kind] >= n {
			e.mu.Unlock()
			return nil
		}
		if e.cond == nil {
			e.cond = make(chan struct{})
		}
		moved, got := e.cond, e.done[kind]
		e.mu.Unlock()
		select {
		case <-moved:
		case <-timeout:
			return fmt.Errorf("%d of %d %s actions done within %s", got, n, kind, rolloverWait)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// windowStarts is how many times each daemon is started on the million
// reports; the median counts.
const windowStarts = 3

// benchWindowStart times an in-process daemon's start on the dashboard
// benchmark's ledger of a million reports over the past week: with a
// lifetime global budget, and with day, month and rolling 30d windows,
// whose usage the start reads from the reports by time (the 30d window
// reads all million, in 60 buckets per bottle, agent and provider). The
// starts alternate, so the page cache favours neither.
func benchWindowStart(ctx context.Context, r *runner) error {
	dir, err := r.tempDir("window-start")
	if err != nil {
		return err
	}
	path := filepath.Join(dir, "bot-bottle.db")
	t0 := time.Now()
	if err := fillDashLedger(ctx, path, time.Now()); err != nil {
		return err
	}
	r.logf("window start: filled %d reports in %s", bigLedger, time.Since(t0).Round(time.Millisecond))
	life, err := budget.ParseLimitSet("500M")
	if err != nil {
		return err
	}
	windows, err := budget.ParseLimitSet("500M/day+5G/month+1G/30d")
	if err != nil {
		return err
	}
	times := map[string][]time.Duration{}
	for range windowStarts {
		for _, limits := range []budget.LimitSet{life, windows} {
			s := budget.DefaultSettings()
			s.Budget = budget.Limits{"claude": limits}
			took, err := timeStart(ctx, dir, path, s)
			if err != nil {
				return err
			}
			times[limits.String()] = append(times[limits.String()], took)
		}
	}
	lifeMs, winMs := msOf(dashMedian(times[life.String()])), msOf(dashMedian(times[windows.String()]))
	r.logf("daemon start on 1M reports: lifetime %.1f ms, with day, month and 30d windows %.1f ms", lifeMs, winMs)
	r.report("window_start_1m_ms", round3(winMs), "ms")
	r.report("window_start_1m_extra_ms", round3(winMs-lifeMs), "ms")
	return nil
}

// timeStart starts an in-process daemon on the ledger at path and returns
// how long Start took (socket, ledger, book and windows rebuilt, pending
// actions resumed), then stops it.
func timeStart(ctx context.Context, dir, path string, s *budget.Settings) (time.Duration, error) {
	sock := filepath.Join(dir, "s.sock")
	t0 := time.Now()
	d, err := daemon.Start(ctx, daemon.Config{Socket: sock, DBPath: path, Home: dir, Settings: s})
	took := time.Since(t0)
	if err != nil {
		return 0, err
	}
	stop, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return took, d.Stop(stop)
}

// benchClock is a clock the benchmark moves by hand: its time stands
// still between moves, and a move fires the timers it passes, each in its
// own goroutine, as time.AfterFunc would (the daemon's Now and AfterFunc).
type benchClock struct {
	mu     sync.Mutex
	now    time.Time
	timers map[*benchTimer]bool
}

type benchTimer struct {
	at time.Time
	f  func()
}

func newBenchClock(t time.Time) *benchClock {
	return &benchClock{now: t, timers: map[*benchTimer]bool{}}
}

func (c *benchClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *benchClock) AfterFunc(d time.Duration, f func()) (stop func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &benchTimer{at: c.now.Add(d), f: f}
	if d <= 0 {
		go f()
		return func() bool { return false }
	}
	c.timers[t] = true
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		waiting := c.timers[t]
		delete(c.timers, t)
		return waiting
	}
}

// Set moves the clock to t and fires the timers due by then.
func (c *benchClock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	var due []*benchTimer
	for tm := range c.timers {
		if !tm.at.After(t) {
			due = append(due, tm)
			delete(c.timers, tm)
		}
	}
	c.mu.Unlock()
	for _, tm := range due {
		go tm.f()
	}
}
