package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/bot-bottle/bottlecap/simhost"
	"github.com/bot-bottle/bottlecap/tui"
)

// dashFrame measures one dashboard frame with n bottles (dash_frame_1000_ms):
// computing the snapshot from the store's rows of simhost.Fleet (verdicts,
// governing scopes, burn rates, tree), the model taking it in, and
// rendering the table at 200×60. The store query itself is measured
// separately (dash_query_1m_ms). It returns the median of a few frames.
//
// It drives the model as the Bubble Tea runtime does, through its public
// messages and commands: Init asks for a load, the load command returns
// the snapshot, Update takes it in, View renders.
func dashFrame(n int) (time.Duration, error) {
	if n <= 0 {
		return 0, fmt.Errorf("dash frame: n = %d, want > 0", n)
	}
	src := &fleetSource{in: simhost.Fleet(n, time.Date(2026, 11, 21, 20, 0, 0, 0, time.UTC))}
	now := src.in.Now
	m := tui.NewModel(context.Background(), tui.Options{Source: src, Now: func() time.Time { return now }, Refresh: time.Hour})
	m.Update(tea.WindowSizeMsg{Width: 200, Height: 60})
	const frames = 7
	times := make([]time.Duration, 0, frames)
	for range frames {
		start := time.Now()
		msg, err := src.loadVia(m.Init())
		if err != nil {
			return 0, err
		}
		m.Update(msg)
		_ = m.View()
		times = append(times, time.Since(start))
		if got := src.rows.Load(); got != int64(n) {
			return 0, fmt.Errorf("dash frame: %d rows, want %d", got, n)
		}
	}
	return dashMedian(times), nil
}

// fleetSource builds the dashboard's snapshot from a fixed input, as
// StoreSource does from the store's rows, and counts its loads.
type fleetSource struct {
	in    tui.Input
	loads atomic.Int64
	rows  atomic.Int64
}

// Load builds the snapshot.
func (s *fleetSource) Load(context.Context, string) (tui.Snapshot, error) {
	s.loads.Add(1)
	snap := tui.Build(s.in)
	s.rows.Store(int64(len(snap.Rows)))
	return snap, nil
}

// loadVia runs the load among init's commands and returns its message.
// Init batches the load first, then the refresh timer (an hour away, never
// run here); the load count proves the command run was the load.
func (s *fleetSource) loadVia(init tea.Cmd) (tea.Msg, error) {
	before := s.loads.Load()
	msg := init()
	if batch, ok := msg.(tea.BatchMsg); ok && len(batch) > 0 {
		msg = batch[0]()
	}
	if s.loads.Load() != before+1 {
		return nil, fmt.Errorf("dash frame: the dashboard's first command loaded no snapshot")
	}
	return msg, nil
}
