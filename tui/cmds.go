package tui

import (
	"context"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
)

// Messages: every piece of I/O happens in a tea.Cmd that returns one.
type (
	// snapshotMsg is a finished load.
	snapshotMsg struct {
		snap Snapshot
		err  error
	}
	// tickMsg is the periodic refresh.
	tickMsg struct{}
	// subscribedMsg is an open event stream.
	subscribedMsg struct{ ch <-chan api.Event }
	// eventsMsg is one or more daemon events, coalesced.
	eventsMsg struct {
		ch <-chan api.Event
		n  int
	}
	// unsubscribedMsg is an event stream that failed or ended.
	unsubscribedMsg struct{ err error }
	// resubscribeMsg asks to try the event stream again.
	resubscribeMsg struct{}
	// actedMsg is the daemon's answer to an action.
	actedMsg struct {
		slug   string
		action budget.ActionKind
		err    error
	}
)

// actionReason is the reason the dashboard gives the daemon's audit log.
const actionReason = "operator action from bottlecap dash"

// resubscribeAfter is how long to wait before reopening the event stream.
const resubscribeAfter = 2 * time.Second

// loadCmd loads a snapshot and asks the daemon whether it is there.
func loadCmd(ctx context.Context, src Source, d Daemon, detail string) tea.Cmd {
	return func() tea.Msg {
		snap, err := src.Load(ctx, detail)
		if err != nil {
			return snapshotMsg{err: err}
		}
		if d != nil {
			p := d.Probe(ctx)
			snap.DaemonUp, snap.StatusRead, snap.Fleet = p.Up, p.StatusRead, p.Fleet
			for i := range snap.Providers {
				snap.Providers[i].Held = p.Held[snap.Providers[i].Provider]
			}
		}
		return snapshotMsg{snap: snap}
	}
}

// tickCmd schedules the next periodic refresh.
func tickCmd(every time.Duration) tea.Cmd {
	return tea.Tick(every, func(time.Time) tea.Msg { return tickMsg{} })
}

// subscribeCmd opens the daemon's event stream.
func subscribeCmd(ctx context.Context, d Daemon) tea.Cmd {
	if d == nil {
		return nil
	}
	return func() tea.Msg {
		ch, err := d.Events(ctx)
		if err != nil {
			return unsubscribedMsg{err}
		}
		return subscribedMsg{ch}
	}
}

// waitEventsCmd waits for the next event and takes every event already
// queued behind it, so a burst costs one reload.
func waitEventsCmd(ch <-chan api.Event) tea.Cmd {
	return func() tea.Msg {
		if _, ok := <-ch; !ok {
			return unsubscribedMsg{}
		}
		n := 1
		for {
			select {
			case _, ok := <-ch:
				if !ok {
					return eventsMsg{ch: nil, n: n}
				}
				n++
			default:
				return eventsMsg{ch: ch, n: n}
			}
		}
	}
}

// resubscribeCmd waits, then asks for the event stream again.
func resubscribeCmd() tea.Cmd {
	return tea.Tick(resubscribeAfter, func(time.Time) tea.Msg { return resubscribeMsg{} })
}

// actCmd sends an action to the daemon.
func actCmd(ctx context.Context, d Daemon, slug string, action budget.ActionKind) tea.Cmd {
	return func() tea.Msg {
		err := d.Act(ctx, slug, action, actionReason)
		return actedMsg{slug: slug, action: action, err: err}
	}
}
