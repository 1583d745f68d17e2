package tui_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/exp/teatest/v2"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/tui"
)

// Full-program flows: the real event loop, commands and renderer, with a
// fake store and daemon. A few only; the rest is tested through Update.

func start(t *testing.T, src tui.Source, d tui.Daemon, refresh time.Duration) *teatest.TestModel {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	m := tui.NewModel(ctx, tui.Options{Source: src, Daemon: d, Now: tui.FixtureClock, Refresh: refresh})
	return teatest.NewTestModel(t, m, teatest.WithInitialTermSize(120, 40))
}

func waitFor(t *testing.T, tm *teatest.TestModel, text string) {
	t.Helper()
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return bytes.Contains(b, []byte(text)) },
		teatest.WithDuration(5*time.Second), teatest.WithCheckInterval(20*time.Millisecond))
}

func quit(t *testing.T, tm *teatest.TestModel) {
	t.Helper()
	tm.Send(tea.KeyPressMsg{Code: 'q', Text: "q"})
	tm.WaitFinished(t, teatest.WithFinalTimeout(5*time.Second))
}

func TestProgramCutoffFlow(t *testing.T) {
	src, d := tui.NewFakeSource(tui.Fixture()), tui.NewFakeDaemon()
	tm := start(t, src, d, time.Hour)
	waitFor(t, tm, "implementer-b2")
	tm.Type("jj")
	tm.Send(tea.KeyPressMsg{Code: 'c', Text: "c"})
	waitFor(t, tm, "Cut off implementer-b2?")
	tm.Send(tea.KeyPressMsg{Code: tea.KeyEnter}) // Enter is No
	waitFor(t, tm, "cancelled")
	tm.Type("cy")
	waitFor(t, tm, "accepted by the daemon")
	quit(t, tm)
	want := []tui.Acted{{Slug: "implementer-b2", Action: budget.ActCutoff, Reason: "operator action from bottlecap dash"}}
	if got := d.Acts(); len(got) != 1 || got[0] != want[0] {
		t.Errorf("acts = %+v, want %+v", got, want)
	}
}

func TestProgramReloadsOnEvent(t *testing.T) {
	src, d := tui.NewFakeSource(tui.Fixture()), tui.NewFakeDaemon()
	tm := start(t, src, d, time.Hour) // no periodic refresh: only the event can reload
	waitFor(t, tm, "implementer-b2")
	before := src.Loads()
	src.SetState("orchestrator-a1", budget.Frozen)
	d.Emit(api.Event{Type: "state", Bottle: "orchestrator-a1"})
	waitFor(t, tm, "❄ frozen")
	if src.Loads() <= before {
		t.Error("the event did not reload the snapshot")
	}
	quit(t, tm)
}

func TestProgramDaemonComesBack(t *testing.T) {
	src, d := tui.NewFakeSource(tui.Fixture()), tui.NewFakeDaemon()
	d.SetUp(false)
	tm := start(t, src, d, 50*time.Millisecond)
	waitFor(t, tm, "UNREACHABLE")
	tm.Type("c") // disabled: says why instead of asking
	waitFor(t, tm, "actions are disabled")
	d.SetUp(true)
	waitFor(t, tm, "daemon: up")
	tm.Type("c")
	waitFor(t, tm, "Cut off orchestrator-a1?")
	tm.Type("n")
	quit(t, tm)
	if got := d.Acts(); len(got) != 0 {
		t.Errorf("acts = %+v, want none", got)
	}
}
