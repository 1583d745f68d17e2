package main

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/controller"
	"github.com/bot-bottle/bottlecap/enforcement"
	"github.com/bot-bottle/bottlecap/store"
	"github.com/moby/moby/client"
)

// docker is the daemon's Docker side: the engine client, the action runner
// and the discovery watch, stopped together.
type docker struct {
	engine *client.Client
	runner *enforcement.Runner
	enf    *runnerEnforcer
	log    *slog.Logger
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// newDocker builds the engine client and the runner. Nothing is dialled
// yet: an engine that is down only keeps actions pending, retried.
func newDocker(db *store.DB, home string, log *slog.Logger) (*docker, error) {
	engine, err := enforcement.Connect()
	if err != nil {
		return nil, err
	}
	d := &docker{engine: engine, log: log, enf: &runnerEnforcer{jobs: map[int64]controller.Job{}}}
	d.runner = enforcement.NewRunner(enforcement.NewDocker(engine, home, db), enforcement.RunnerOptions{
		OnAttempt: d.enf.attempted,
		OnDone:    d.enf.done,
	})
	d.enf.runner = d.runner
	return d, nil
}

// start runs the runner and the discovery watch until stop.
func (d *docker) start(srv *controller.Server) {
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	d.wg.Add(2)
	go func() { defer d.wg.Done(); d.runner.Run(ctx) }()
	go func() {
		defer d.wg.Done()
		w := &enforcement.Watcher{Engine: d.engine, Report: func(c enforcement.Discovered) { d.discovered(ctx, srv, c) },
			OnError: func(err error) { d.log.Warn("docker discovery interrupted; reconnecting", "err", err) }}
		w.Run(ctx)
	}()
}

func (d *docker) discovered(ctx context.Context, srv *controller.Server, c enforcement.Discovered) {
	if c.Err != nil {
		d.log.Warn("bottle container has labels that do not parse; they are ignored", "container", c.Name, "bottle", c.Bottle, "err", c.Err)
	}
	err := srv.Discover(ctx, controller.Container{ID: c.ContainerID, Bottle: c.Bottle, Agent: c.Agent, Parent: c.Parent,
		Budget: c.Budget, Shutdown: c.Shutdown, Gone: c.State == enforcement.StateRemoved})
	if err != nil {
		d.log.Error("register discovered container", "container", c.Name, "bottle", c.Bottle, "err", err)
	}
}

// stop ends the watch and the runner; actions still running stay pending in
// the journal and are resumed on the next start.
func (d *docker) stop() {
	if d.cancel != nil {
		d.cancel()
	}
	d.wg.Wait()
	d.engine.Close()
}

// status answers the Docker part of /v1/status.
func (d *docker) status(ctx context.Context) api.DockerStatus {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	ok, version, err := enforcement.EngineStatus(ctx, d.engine)
	st := api.DockerStatus{Enabled: true, Reachable: ok, APIVersion: version}
	if err != nil {
		st.Error = err.Error()
	}
	return st
}

// containerBottle finds a peer container's bottle from its labels.
func (d *docker) containerBottle(ctx context.Context, id string) (string, bool) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	res, err := d.engine.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil || res.Container.Config == nil {
		return "", false // unknown: the report is refused, never let through
	}
	return enforcement.BottleOf(res.Container.Config.Labels)
}

// runnerEnforcer adapts the enforcement runner to the controller's
// Enforcer, carrying each job's callbacks by action id.
type runnerEnforcer struct {
	runner *enforcement.Runner
	mu     sync.Mutex
	jobs   map[int64]controller.Job
}

// Submit implements controller.Enforcer.
func (e *runnerEnforcer) Submit(j controller.Job) {
	e.mu.Lock()
	e.jobs[j.Action.ID] = j
	e.mu.Unlock()
	a := j.Action
	// A runner that has stopped refuses; the action stays pending in the
	// journal and is resumed on the next start, which is the fallback.
	_ = e.runner.Submit(enforcement.Action{ID: a.ID, Kind: a.Kind, Bottle: a.Bottle, Containers: j.Containers, Reason: a.Reason})
}

func (e *runnerEnforcer) job(id int64, remove bool) (controller.Job, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	j, ok := e.jobs[id]
	if remove {
		delete(e.jobs, id)
	}
	return j, ok
}

// attempted and done count on from the attempts already journaled: an
// action resumed after a restart keeps its count instead of starting at 1.
func (e *runnerEnforcer) attempted(a enforcement.Action, n int, err error) {
	if j, ok := e.job(a.ID, false); ok && err != nil && j.Attempted != nil {
		j.Attempted(j.Action.Attempts+n, err)
	}
}

func (e *runnerEnforcer) done(a enforcement.Action, n int, err error) {
	if j, ok := e.job(a.ID, true); ok {
		j.Finished(j.Action.Attempts+n, err)
	}
}
