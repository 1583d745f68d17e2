package daemon

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/controller"
	"github.com/bot-bottle/bottlecap/enforcement"
	"github.com/bot-bottle/bottlecap/store"
)

// docker is the daemon's Docker side: the action runner and the discovery
// watch over one engine, stopped together, both scoped to the daemon's id.
type docker struct {
	engine   enforcement.Engine
	daemonID string
	runner   *enforcement.Runner
	enf      *RunnerEnforcer
	log      *slog.Logger
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

// newDocker builds the runner; nothing is dialled yet, so an engine that is
// down only keeps actions pending, retried.
func newDocker(engine enforcement.Engine, db *store.DB, home, daemonID string, log *slog.Logger) *docker {
	dk := enforcement.NewDocker(engine, home, db)
	dk.DaemonID = daemonID
	enf := NewRunnerEnforcer(dk, enforcement.RunnerOptions{})
	return &docker{engine: engine, daemonID: daemonID, runner: enf.Runner(), enf: enf, log: log}
}

// start runs the runner and, with discover, the discovery watch, until stop.
func (d *docker) start(srv *controller.Server, discover bool) {
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	d.wg.Add(1)
	go func() { defer d.wg.Done(); d.runner.Run(ctx) }()
	if !discover {
		return
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		w := &enforcement.Watcher{Engine: d.engine, DaemonID: d.daemonID, Report: func(c enforcement.Discovered) { d.discovered(ctx, srv, c) },
			OnError: func(err error) { d.log.Warn("docker discovery interrupted; reconnecting", "err", err) }}
		w.Run(ctx)
	}()
}

func (d *docker) discovered(ctx context.Context, srv *controller.Server, c enforcement.Discovered) {
	if c.Err != nil {
		d.log.Warn("bottle container has labels that do not parse; they are ignored", "container", c.Name, "bottle", c.Bottle, "err", c.Err)
	}
	err := srv.Discover(ctx, controller.Container{ID: c.ContainerID, Bottle: c.Bottle, Agent: c.Agent, Parent: c.Parent,
		Budget: c.Budget, Shutdown: c.Shutdown, Rate: c.Rate, Gone: c.State == enforcement.StateRemoved})
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
}

// status answers the Docker part of /v1/status.
func (d *docker) status(ctx context.Context) api.DockerStatus {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	ok, version, err := enforcement.EngineStatus(ctx, d.engine)
	st := api.DockerStatus{Enabled: true, Reachable: ok, APIVersion: version, DaemonID: d.daemonID}
	if err != nil {
		st.Error = err.Error()
	}
	return st
}

// containerBottle finds a peer container's bottle from its labels; unknown
// (or another daemon's) means the report is refused, never let through.
func (d *docker) containerBottle(ctx context.Context, id string) (string, bool) {
	return enforcement.ContainerBottle(ctx, d.engine, id, d.daemonID)
}
