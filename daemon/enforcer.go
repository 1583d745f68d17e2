package daemon

import (
	"sync"

	"github.com/bot-bottle/bottlecap/controller"
	"github.com/bot-bottle/bottlecap/enforcement"
)

// RunnerEnforcer adapts an enforcement.Runner to the controller's Enforcer,
// carrying each job's callbacks by action id.
type RunnerEnforcer struct {
	runner *enforcement.Runner
	mu     sync.Mutex
	jobs   map[int64]controller.Job
}

var _ controller.Enforcer = (*RunnerEnforcer)(nil)

// NewRunnerEnforcer builds a runner over enf whose outcomes reach the
// controller's jobs (opts' own callbacks are replaced). Run the runner with
// Runner().Run.
func NewRunnerEnforcer(enf enforcement.Enforcer, opts enforcement.RunnerOptions) *RunnerEnforcer {
	e := &RunnerEnforcer{jobs: map[int64]controller.Job{}}
	opts.OnAttempt, opts.OnDone = e.attempted, e.done
	e.runner = enforcement.NewRunner(enf, opts)
	return e
}

// Runner is the runner the enforcer feeds.
func (e *RunnerEnforcer) Runner() *enforcement.Runner { return e.runner }

// Submit implements controller.Enforcer.
func (e *RunnerEnforcer) Submit(j controller.Job) {
	e.mu.Lock()
	e.jobs[j.Action.ID] = j
	e.mu.Unlock()
	a := j.Action
	// A runner that has stopped refuses; the action stays pending in the
	// journal and is resumed on the next start, which is the fallback.
	_ = e.runner.Submit(enforcement.Action{ID: a.ID, Kind: a.Kind, Bottle: a.Bottle, Containers: j.Containers, Reason: a.Reason})
}

func (e *RunnerEnforcer) job(id int64, remove bool) (controller.Job, bool) {
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
func (e *RunnerEnforcer) attempted(a enforcement.Action, n int, err error) {
	if j, ok := e.job(a.ID, false); ok && err != nil && j.Attempted != nil {
		j.Attempted(j.Action.Attempts+n, err)
	}
}

func (e *RunnerEnforcer) done(a enforcement.Action, n int, err error) {
	if j, ok := e.job(a.ID, true); ok {
		j.Finished(j.Action.Attempts+n, err)
	}
}
