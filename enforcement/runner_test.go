package enforcement_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/enforcement"
)

// enforcerFunc adapts a function to enforcement.Enforcer.
type enforcerFunc func(ctx context.Context, a enforcement.Action) error

func (f enforcerFunc) Do(ctx context.Context, a enforcement.Action) error { return f(ctx, a) }

// outcomes collects the runner's callbacks.
type outcomes struct {
	mu       sync.Mutex
	attempts []string
	done     chan string
}

func newOutcomes() *outcomes { return &outcomes{done: make(chan string, 100)} }

func (o *outcomes) options() enforcement.RunnerOptions {
	return enforcement.RunnerOptions{
		Sleep: func(ctx context.Context, d time.Duration) error { return ctx.Err() },
		OnAttempt: func(a enforcement.Action, n int, err error) {
			o.mu.Lock()
			defer o.mu.Unlock()
			o.attempts = append(o.attempts, fmt.Sprintf("%s#%d:%v", a, n, err != nil))
		},
		OnDone: func(a enforcement.Action, n int, err error) { o.done <- fmt.Sprintf("%s after %d: %v", a, n, err) },
	}
}

func (o *outcomes) next(t *testing.T) string {
	t.Helper()
	select {
	case s := <-o.done:
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("no action finished")
		return ""
	}
}

// run starts r and stops it (waiting for Run to return) when the test ends.
func run(t *testing.T, r *enforcement.Runner) {
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error)
	go func() { stopped <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-stopped:
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	})
}

func act(kind budget.ActionKind, bottle string) enforcement.Action {
	return enforcement.Action{Kind: kind, Bottle: bottle}
}

func TestRunnerRetriesWhileUnavailable(t *testing.T) {
	calls := 0
	enf := enforcerFunc(func(context.Context, enforcement.Action) error {
		if calls++; calls < 3 {
			return fmt.Errorf("engine: %w", budget.ErrUnavailable)
		}
		return nil
	})
	o := newOutcomes()
	opts := o.options()
	var delays []time.Duration
	opts.Sleep = func(_ context.Context, d time.Duration) error { delays = append(delays, d); return nil }
	opts.Backoff = enforcement.Backoff{Base: time.Second, Max: time.Minute, Rand: func() float64 { return 0 }}
	r := enforcement.NewRunner(enf, opts)
	run(t, r)

	r.Submit(act(budget.ActCutoff, "a"))

	if got, want := o.next(t), "cutoff a after 3: <nil>"; got != want {
		t.Errorf("done = %q, want %q", got, want)
	}
	if want := []string{"cutoff a#1:true", "cutoff a#2:true", "cutoff a#3:false"}; !slices.Equal(o.attempts, want) {
		t.Errorf("attempts = %q, want %q", o.attempts, want)
	}
	if want := []time.Duration{500 * time.Millisecond, time.Second}; !slices.Equal(delays, want) {
		t.Errorf("backoff delays = %v, want %v", delays, want)
	}
}

func TestRunnerGivesUpOnPermanentError(t *testing.T) {
	enf := enforcerFunc(func(context.Context, enforcement.Action) error {
		return fmt.Errorf("engine: %w", budget.ErrDenied)
	})
	o := newOutcomes()
	r := enforcement.NewRunner(enf, o.options())
	run(t, r)
	r.Submit(act(budget.ActKill, "a"))
	if got := o.next(t); got != "kill a after 1: engine: denied" {
		t.Errorf("done = %q", got)
	}
}

func TestRunnerSerialisesOneBottle(t *testing.T) {
	var mu sync.Mutex
	running, maxRunning := 0, 0
	var order []string
	enf := enforcerFunc(func(_ context.Context, a enforcement.Action) error {
		mu.Lock()
		running++
		maxRunning = max(maxRunning, running)
		order = append(order, string(a.Kind))
		mu.Unlock()
		time.Sleep(5 * time.Millisecond)
		mu.Lock()
		running--
		mu.Unlock()
		return nil
	})
	o := newOutcomes()
	r := enforcement.NewRunner(enf, o.options())
	kinds := []budget.ActionKind{budget.ActCutoff, budget.ActRestore, budget.ActCutoff, budget.ActFreeze, budget.ActKill}
	for _, k := range kinds { // submitted before Run: they wait for it
		r.Submit(act(k, "a"))
	}
	run(t, r)
	for range kinds {
		o.next(t)
	}
	mu.Lock()
	defer mu.Unlock()
	if maxRunning != 1 {
		t.Errorf("%d actions of one bottle ran at once, want 1", maxRunning)
	}
	if want := []string{"cutoff", "restore", "cutoff", "freeze", "kill"}; !slices.Equal(order, want) {
		t.Errorf("order = %q, want %q", order, want)
	}
}

func TestRunnerBottlesDoNotBlockEachOther(t *testing.T) {
	release := make(chan struct{})
	enf := enforcerFunc(func(ctx context.Context, a enforcement.Action) error {
		if a.Bottle == "stuck" {
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	o := newOutcomes()
	r := enforcement.NewRunner(enf, o.options())
	run(t, r)
	r.Submit(act(budget.ActCutoff, "stuck"))
	r.Submit(act(budget.ActCutoff, "free"))
	if got := o.next(t); got != "cutoff free after 1: <nil>" {
		t.Errorf("first done = %q, want the free bottle while the other is stuck", got)
	}
	close(release)
	if got := o.next(t); got != "cutoff stuck after 1: <nil>" {
		t.Errorf("second done = %q", got)
	}
}

func TestRunnerStopsRetryingAndRefusesAfterStop(t *testing.T) {
	enf := enforcerFunc(func(context.Context, enforcement.Action) error { return budget.ErrUnavailable })
	o := newOutcomes()
	opts := o.options()
	opts.Sleep = nil // the real sleep, to show it is interrupted
	opts.Backoff = enforcement.Backoff{Base: time.Hour}
	r := enforcement.NewRunner(enf, opts)
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error)
	go func() { stopped <- r.Run(ctx) }()
	r.Submit(act(budget.ActCutoff, "a"))
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case err := <-stopped:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return while an action was backing off")
	}
	if err := r.Submit(act(budget.ActCutoff, "a")); !errors.Is(err, enforcement.ErrStopped) {
		t.Errorf("Submit after stop = %v, want ErrStopped", err)
	}
	if len(o.done) != 0 {
		t.Errorf("an interrupted action was reported done: %q", <-o.done)
	}
}
