package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	dclient "github.com/moby/moby/client"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/client"
	"github.com/bot-bottle/bottlecap/controller"
	"github.com/bot-bottle/bottlecap/enforcement"
	"github.com/bot-bottle/bottlecap/store"
)

func init() { register("enforce", benchEnforce) }

const (
	enforceCrossings = 200 // bottles, each crossing its budget once
	enforceBudget    = 1000
	// enforceWait bounds the wait for one crossing's engine call.
	enforceWait = 30 * time.Second
)

// benchEnforce measures how soon a committed crossing reaches the engine:
// against a fake engine that notes its first call (no Docker latency), and
// against the real engine, until the container is off its network.
func benchEnforce(ctx context.Context, r *runner) error {
	lat, err := firstCallLatencies(ctx)
	if err != nil {
		return fmt.Errorf("fake engine: %w", err)
	}
	slices.Sort(lat)
	r.report("enforce_first_call_p50_ms", round3(msOf(lat[len(lat)/2])), "ms")
	r.report("enforce_first_call_p99_ms", round3(msOf(lat[len(lat)*99/100])), "ms")
	return benchRealDisconnect(ctx, r)
}

// firstCallLatencies registers enforceCrossings bottles and, one at a
// time, sends the report that crosses each budget, timing from just before
// the report is sent to the fake engine's first call for that cutoff.
func firstCallLatencies(ctx context.Context) ([]time.Duration, error) {
	eng := &firstCallEngine{calls: make(chan time.Time, 1)}
	d, err := startEnforceDaemon(ctx, eng)
	if err != nil {
		return nil, err
	}
	defer d.stop()
	c := client.New(d.sock)
	defer c.Close()
	lat := make([]time.Duration, 0, enforceCrossings)
	for i := range enforceCrossings {
		slug := fmt.Sprintf("cross-%03d", i)
		if _, err := c.PutBottle(ctx, slug, api.BottleRequest{Budget: map[string]api.Amount{"claude": enforceBudget}}); err != nil {
			return nil, err
		}
		t0 := time.Now()
		if _, err := c.Ingest(ctx, []api.Report{crossingReport(slug)}); err != nil {
			return nil, err
		}
		select {
		case t1 := <-eng.calls:
			lat = append(lat, t1.Sub(t0))
		case <-time.After(enforceWait):
			return nil, fmt.Errorf("crossing of %s: no engine call within %s", slug, enforceWait)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return lat, nil
}

// crossingReport is one report that exhausts a bottle's budget alone.
func crossingReport(slug string) api.Report {
	return api.Report{Report: budget.Report{ID: "x-" + slug, Bottle: slug, Agent: "impl", Provider: "claude",
		Usage: budget.Usage{Input: enforceBudget + 1}, Complete: true}}
}

// firstCallEngine is a fake engine for cutoffs: a cutoff's first call lists
// the containers, which it answers with none, so that is the only call it
// gets; it notes when. Crossings are sent one at a time, so each call
// belongs to the latest one. Any other call panics on the nil Engine: the
// benchmark would be measuring something else.
type firstCallEngine struct {
	enforcement.Engine
	calls chan time.Time
}

// ContainerList implements enforcement.Engine.
func (f *firstCallEngine) ContainerList(context.Context, dclient.ContainerListOptions) (dclient.ContainerListResult, error) {
	select {
	case f.calls <- time.Now():
	default: // a second call for the same crossing: the first one counts
	}
	return dclient.ContainerListResult{}, nil
}

// enforceDaemon is an in-process daemon on a real socket and ledger whose
// enforcer is the Docker runner over the given engine, wired as `bottlecap
// serve` wires it (cmd/bottlecap/docker.go), without discovery.
type enforceDaemon struct {
	dir    string
	sock   string
	db     *store.DB
	writer *store.Writer
	srv    *controller.Server
	cancel context.CancelFunc
	done   sync.WaitGroup
	served chan error
}

func startEnforceDaemon(ctx context.Context, engine enforcement.Engine) (*enforceDaemon, error) {
	dir, err := os.MkdirTemp("", "bce") // short: unix socket paths are limited
	if err != nil {
		return nil, err
	}
	d := &enforceDaemon{dir: dir, sock: filepath.Join(dir, "run", "bottlecap.sock"), served: make(chan error, 1)}
	if d.db, err = store.Open(ctx, filepath.Join(dir, "bot-bottle.db")); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	d.writer = store.NewWriter(d.db)
	enf := &benchEnforcer{jobs: map[int64]controller.Job{}}
	runner := enforcement.NewRunner(enforcement.NewDocker(engine, dir, d.db), enforcement.RunnerOptions{OnDone: enf.done})
	enf.runner = runner
	d.srv, err = controller.New(ctx, controller.Config{Store: d.db, Ingester: d.writer, Settings: budget.DefaultSettings(),
		Enforcer: enf, Socket: d.sock, StorePath: d.db.Path()})
	if err != nil {
		d.closeStore()
		return nil, err
	}
	l, err := controller.Listen(d.sock)
	if err != nil {
		d.closeStore()
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	d.done.Add(1)
	go func() { defer d.done.Done(); runner.Run(rctx) }()
	go func() { d.served <- d.srv.Serve(l) }()
	return d, nil
}

func (d *enforceDaemon) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d.srv.Shutdown(ctx)
	<-d.served
	d.cancel()
	d.done.Wait()
	d.closeStore()
}

func (d *enforceDaemon) closeStore() {
	d.writer.Close()
	d.db.Close()
	os.RemoveAll(d.dir)
}

// benchEnforcer is the daemon's runnerEnforcer in small: it hands each
// journaled action to the runner and reports the outcome to its job.
type benchEnforcer struct {
	runner *enforcement.Runner
	mu     sync.Mutex
	jobs   map[int64]controller.Job
}

// Submit implements controller.Enforcer.
func (e *benchEnforcer) Submit(j controller.Job) {
	e.mu.Lock()
	e.jobs[j.Action.ID] = j
	e.mu.Unlock()
	a := j.Action
	// A stopped runner refuses; the action stays pending, as in the daemon.
	_ = e.runner.Submit(enforcement.Action{ID: a.ID, Kind: a.Kind, Bottle: a.Bottle, Containers: j.Containers, Reason: a.Reason})
}

func (e *benchEnforcer) done(a enforcement.Action, n int, err error) {
	e.mu.Lock()
	j, ok := e.jobs[a.ID]
	delete(e.jobs, a.ID)
	e.mu.Unlock()
	if ok {
		j.Finished(n, err)
	}
}

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
