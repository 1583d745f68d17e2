package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/client"
)

func init() { register("fleet_overshoot", benchFleetOvershoot) }

// The fleet overshoot workload (SPEC sections 10 and 14): three daemons,
// each its own process on its own home, share one fleet budget in one
// Postgres and spend it flat out, each with fleetSpenders clients that
// do what a meter does — ask an allowance for a request's estimate, spend,
// report the true count naming the allowance, give back what the report
// did not settle (a meter does once idle; left held, the estimates' 5%
// margin would stay reserved for the allowance TTL, 30 s, longer than
// the run) — until the fleet stops them. Requests are coding-agent sized; estimates err high as the
// meter's do, except for one request in fleetUnderEvery, whose true count
// is up to fleetUnderBy above its estimate.
const (
	fleetHosts       = 3
	fleetSpenders    = 16
	fleetLimit       = 3_000_000 // claude tokens: ~150 requests
	fleetRequestMin  = 15_000
	fleetRequestMax  = 25_000
	fleetEstimateBy  = 0.05 // estimates 5% above the truth
	fleetUnderEvery  = 30
	fleetUnderBy     = 0.10
	fleetGiveUpAfter = 200 // denials in a row before a spender stops
)

// benchFleetOvershoot reports how far past its limit a fleet budget spent
// from three daemons at once goes (fleet_overshoot_pct), and how much of
// it they spent (fleet_spent_pct).
func benchFleetOvershoot(ctx context.Context, r *runner) error {
	dsn, stop, err := privateFleetDB(ctx)
	if err != nil {
		return err
	}
	defer stop()
	var socks []string
	for i := range fleetHosts {
		d, err := startProcDaemon(ctx, r, fmt.Sprintf("fleet:\n  postgres: %s\n  host: h%d\n  budget:\n    claude: %d\n", dsn, i, fleetLimit))
		if err != nil {
			return err
		}
		defer d.stop()
		socks = append(socks, d.sock)
	}
	started := time.Now()
	requests, err := spendFleet(ctx, socks)
	if err != nil {
		return err
	}
	took := time.Since(started)
	var total int64
	for _, sock := range socks {
		n, err := claudeUsed(ctx, sock)
		if err != nil {
			return err
		}
		total += n
	}
	r.logf("fleet: %d requests, %d of %d tokens spent by %d daemons in %s", requests, total, fleetLimit, fleetHosts, took.Round(time.Millisecond))
	r.report("fleet_overshoot_pct", round3(100*float64(max(total-fleetLimit, 0))/fleetLimit), "%")
	r.report("fleet_spent_pct", round3(100*float64(total)/fleetLimit), "%")
	r.report("fleet_spend_requests_per_s", round3(float64(requests)/took.Seconds()), "requests/s")
	return nil
}

// spendFleet runs every daemon's spenders until all have stopped, and
// returns how many requests they made.
func spendFleet(ctx context.Context, socks []string) (int64, error) {
	var requests atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for h, sock := range socks {
		c := client.New(sock)
		defer c.Close()
		for s := range fleetSpenders {
			wg.Go(func() {
				sp := fleetSpender{c: c, bottle: fmt.Sprintf("h%d-%02d", h, s), rng: rand.New(rand.NewPCG(uint64(h), uint64(s)))}
				n, err := sp.run(ctx)
				requests.Add(n)
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
				}
			})
		}
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return 0, err
	}
	return requests.Load(), ctx.Err()
}

// fleetSpender is one meter-like client of one daemon.
type fleetSpender struct {
	c      *client.Client
	bottle string
	rng    *rand.Rand
	n      int
}

// run spends until the daemon denies for good: the fleet exhausted, the
// bottle stopped by the fleet's crossing, or fleetGiveUpAfter denials in
// a row (the last of the budget held by other hosts' leases).
func (s *fleetSpender) run(ctx context.Context) (int64, error) {
	var requests int64
	for denied := 0; denied < fleetGiveUpAfter && ctx.Err() == nil; {
		truth := fleetRequestMin + s.rng.Int64N(fleetRequestMax-fleetRequestMin+1)
		estimate := int64(float64(truth) * (1 + fleetEstimateBy))
		if s.rng.IntN(fleetUnderEvery) == 0 {
			truth = int64(float64(estimate) * (1 + fleetUnderBy*s.rng.Float64()))
		}
		a, err := s.c.Allow(ctx, api.AllowanceRequest{Bottle: s.bottle, Agent: "a", Provider: "claude", Tokens: estimate})
		if err != nil {
			return requests, fmt.Errorf("allowance: %w", err)
		}
		if a.Granted < estimate {
			if err := s.release(ctx, a.ID); err != nil {
				return requests, err
			}
			if v := a.Verdict; v.State.Blocked() || (v.Kind == budget.ScopeFleet && v.Used >= v.Limit) {
				return requests, nil // the fleet is spent as known, or the bottle was stopped
			}
			denied++
			time.Sleep(5 * time.Millisecond)
			continue
		}
		denied = 0
		s.n++
		rep := api.Report{Report: budget.Report{ID: fmt.Sprintf("%s-%d", s.bottle, s.n), Bottle: s.bottle, Agent: "a", Provider: "claude",
			Usage: budget.Usage{Input: truth}}, Allowance: a.ID}
		if _, err := s.c.Ingest(ctx, []api.Report{rep}); err != nil {
			return requests, fmt.Errorf("report: %w", err)
		}
		if err := s.release(ctx, a.ID); err != nil {
			return requests, err
		}
		requests++
	}
	return requests, nil
}

// release gives back what an allowance still holds, as a meter does once
// idle; one the daemon already closed (settled in full, or expired) has
// nothing left to give.
func (s *fleetSpender) release(ctx context.Context, id string) error {
	if err := s.c.ReleaseAllowance(ctx, id); err != nil && !errors.Is(err, budget.ErrNotFound) {
		return fmt.Errorf("release: %w", err)
	}
	return nil
}

// claudeUsed is a daemon's lifetime claude usage.
func claudeUsed(ctx context.Context, sock string) (int64, error) {
	c := client.New(sock)
	defer c.Close()
	st, err := c.Status(ctx)
	if err != nil {
		return 0, err
	}
	for _, v := range st.Global {
		if v.Provider == "claude" {
			return v.Used, nil
		}
	}
	return 0, nil
}
