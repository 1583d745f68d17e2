package tui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	tea "charm.land/bubbletea/v2"
)

// Options configure the dashboard. Source is required; a nil Daemon runs
// the dashboard as if the daemon were down.
type Options struct {
	// Source loads snapshots; the real one is NewStoreSource over a store
	// opened with store.OpenReadOnly.
	Source Source
	// Daemon is how actions are sent and events received.
	Daemon Daemon
	// ReadOnly removes the action keys (`bottlecap dash --readonly`).
	ReadOnly bool
	// Banner is a short notice the header always shows, such as `bottlecap
	// demo` saying that it touches no containers; empty for none.
	Banner string
	// Now is the clock; time.Now by default.
	Now func() time.Time
	// Refresh is the periodic refresh when no event arrives (default 2s).
	Refresh time.Duration
	// Input and Output replace the terminal, for tests.
	Input  io.Reader
	Output io.Writer
	// ProgramOptions are passed to tea.NewProgram after the above, for
	// tests (e.g. tea.WithWindowSize).
	ProgramOptions []tea.ProgramOption
}

// DefaultRefresh is the periodic refresh: the fallback when no event
// arrives.
const DefaultRefresh = 2 * time.Second

func (o Options) withDefaults() Options {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Refresh <= 0 {
		o.Refresh = DefaultRefresh
	}
	return o
}

// Run runs the dashboard until the operator quits or ctx ends; both are a
// clean exit. Nothing is logged to the terminal.
func Run(ctx context.Context, o Options) error {
	if o.Source == nil {
		return errors.New("dashboard: no source")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the event stream and any load in flight
	opts := []tea.ProgramOption{tea.WithContext(ctx)}
	if o.Input != nil {
		opts = append(opts, tea.WithInput(o.Input))
	}
	if o.Output != nil {
		opts = append(opts, tea.WithOutput(o.Output))
	}
	opts = append(opts, o.ProgramOptions...)
	_, err := tea.NewProgram(NewModel(ctx, o), opts...).Run()
	if err != nil && !(errors.Is(err, tea.ErrProgramKilled) && ctx.Err() != nil) {
		return fmt.Errorf("dashboard: %w", err)
	}
	return nil
}
