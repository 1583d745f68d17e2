package enforcement

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/internal/retry"
)

// Enforcer carries out one action; *Docker is the real one.
type Enforcer interface {
	Do(ctx context.Context, a Action) error
}

// Backoff spaces retries: Base doubled per attempt, capped at Max, with
// "equal jitter" so that many bottles failing at once do not retry in
// lockstep. It is retry.Backoff, named here because RunnerOptions and
// Watcher take one.
type Backoff = retry.Backoff

// DefaultBackoff retries quickly at first and then every half minute at
// most, which keeps a daemon waiting for a restarting engine responsive
// without hammering it.
var DefaultBackoff = Backoff{Base: 200 * time.Millisecond, Max: 30 * time.Second}

// RunnerOptions configures a Runner. Zero fields take defaults.
type RunnerOptions struct {
	Backoff Backoff
	// Sleep waits d or until ctx is done; tests replace it to run retries
	// without waiting.
	Sleep func(ctx context.Context, d time.Duration) error
	// OnAttempt is called after every attempt with its outcome (nil on
	// success), so the daemon can journal the attempt count and last error.
	OnAttempt func(a Action, attempt int, err error)
	// OnDone is called once an action has succeeded or failed for good, so
	// the daemon can finish it in the journal and the audit log. Actions cut
	// short by the runner stopping get no OnDone: they stay pending in the
	// journal and are resumed after a restart.
	OnDone func(a Action, attempts int, err error)
}

// Runner runs actions with retries. Actions on one bottle run one after
// another in submission order; actions on different bottles run
// concurrently and never wait for each other.
type Runner struct {
	enf  Enforcer
	opts RunnerOptions

	mu      sync.Mutex
	ctx     context.Context // set by Run; nil before
	stopped bool
	queues  map[string][]Action // pending actions per bottle
	busy    map[string]bool     // bottles with a worker
	wg      sync.WaitGroup
}

// ErrStopped is returned by Submit once the runner has stopped.
var ErrStopped = fmt.Errorf("enforcement runner stopped: %w", budget.ErrUnavailable)

// NewRunner returns a runner for enf. Actions submitted before Run start
// when Run is called.
func NewRunner(enf Enforcer, opts RunnerOptions) *Runner {
	if opts.Backoff.Base <= 0 {
		opts.Backoff.Base = DefaultBackoff.Base
	}
	if opts.Backoff.Max < opts.Backoff.Base {
		opts.Backoff.Max = max(DefaultBackoff.Max, opts.Backoff.Base)
	}
	if opts.Sleep == nil {
		opts.Sleep = retry.Sleep
	}
	return &Runner{enf: enf, opts: opts, queues: map[string][]Action{}, busy: map[string]bool{}}
}

// Submit queues an action behind the bottle's earlier ones.
func (r *Runner) Submit(a Action) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return ErrStopped
	}
	r.queues[a.Bottle] = append(r.queues[a.Bottle], a)
	r.startLocked(a.Bottle)
	return nil
}

// Run works until ctx is done, then waits for every worker to return, so
// no goroutine outlives it. It returns ctx's error.
func (r *Runner) Run(ctx context.Context) error {
	r.mu.Lock()
	if r.ctx != nil || r.stopped {
		r.mu.Unlock()
		return errors.New("enforcement runner: Run called twice")
	}
	r.ctx = ctx
	for bottle := range r.queues {
		r.startLocked(bottle)
	}
	r.mu.Unlock()

	<-ctx.Done()
	r.mu.Lock()
	r.stopped = true
	r.mu.Unlock()
	r.wg.Wait()
	return ctx.Err()
}

// startLocked starts the bottle's worker unless it has one or Run has not
// begun. r.mu must be held.
func (r *Runner) startLocked(bottle string) {
	if r.ctx == nil || r.busy[bottle] || len(r.queues[bottle]) == 0 {
		return
	}
	r.busy[bottle] = true
	r.wg.Add(1)
	go r.work(r.ctx, bottle)
}

// work runs the bottle's queue until it is empty or the runner stops.
func (r *Runner) work(ctx context.Context, bottle string) {
	defer r.wg.Done()
	for {
		a, ok := r.next(bottle)
		if !ok {
			return
		}
		r.attempt(ctx, a)
	}
}

// next pops the bottle's next action; ok is false (and the worker is
// released) when the queue is empty or the runner has stopped.
func (r *Runner) next(bottle string) (Action, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	q := r.queues[bottle]
	if r.stopped || len(q) == 0 {
		delete(r.busy, bottle)
		if len(q) == 0 {
			delete(r.queues, bottle)
		}
		return Action{}, false
	}
	r.queues[bottle] = q[1:]
	return q[0], true
}

// attempt tries an action until it succeeds, fails for good or the runner
// stops.
func (r *Runner) attempt(ctx context.Context, a Action) {
	for n := 1; ; n++ {
		err := r.enf.Do(ctx, a)
		if ctx.Err() != nil {
			return // stopping: the action stays pending in the journal
		}
		if r.opts.OnAttempt != nil {
			r.opts.OnAttempt(a, n, err)
		}
		if err == nil || !Retryable(err) {
			if r.opts.OnDone != nil {
				r.opts.OnDone(a, n, err)
			}
			return
		}
		if r.opts.Sleep(ctx, r.opts.Backoff.Delay(n)) != nil {
			return
		}
	}
}
