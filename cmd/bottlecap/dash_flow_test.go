package main

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/exp/teatest/v2"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/client"
	"github.com/bot-bottle/bottlecap/tui"
)

// TestDashCutoffThroughRealDaemon is the whole dashboard program, wired as
// `bottlecap dash` wires it (openDash), against a real daemon on a real
// socket over a real ledger: the operator cuts a bottle off with c, y and
// sees its state change on screen and in the daemon.
func TestDashCutoffThroughRealDaemon(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	home := newHome(t)
	d, err := startDemoDaemon(ctx, home, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.stop)
	c := client.New(d.sock, client.WithRetry(5*time.Second))
	t.Cleanup(func() { c.Close() })
	registerAndSpend(t, c, "solo-1", 250_000)

	dash, err := openDash(ctx, filepath.Join(home, "bot-bottle.db"), filepath.Join(home, "settings.yml"), d.sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dash.Close() })
	o := dash.Options()
	o.Refresh = 200 * time.Millisecond // events drive it; the timer is the fallback
	tm := teatest.NewTestModel(t, tui.NewModel(ctx, o), teatest.WithInitialTermSize(120, 40))

	screenHas(t, tm, "● active", "daemon: up")
	tm.Type("c")
	screenHas(t, tm, "Cut off solo-1?")
	tm.Type("y")
	screenHas(t, tm, "■ cut off")
	b, err := c.Bottle(ctx, "solo-1")
	if err != nil || b.State != budget.CutOff {
		t.Errorf("daemon says solo-1 is %q (%v), want %q", b.State, err, budget.CutOff)
	}
	tm.Send(tea.KeyPressMsg{Code: 'q', Text: "q"})
	tm.WaitFinished(t, teatest.WithFinalTimeout(10*time.Second))
}

// registerAndSpend registers a bottle with a 1M claude budget and reports
// n tokens of usage for it.
func registerAndSpend(t *testing.T, c *client.Client, slug string, n int64) {
	t.Helper()
	ctx := context.Background()
	req := api.BottleRequest{Agent: "implementer", Budget: budget.Limits{"claude": budget.Lifetime(1_000_000)}}
	if _, err := c.PutBottle(ctx, slug, req); err != nil {
		t.Fatalf("register %s: %v", slug, err)
	}
	r := api.Report{Report: budget.Report{ID: "msg_" + slug, Bottle: slug, Provider: "claude", Usage: budget.Usage{Input: n}}}
	if _, err := c.Ingest(ctx, []api.Report{r}); err != nil {
		t.Fatalf("report for %s: %v", slug, err)
	}
}

// screenHas waits, with a generous deadline, until every text has been
// drawn since the last wait (what a wait reads is consumed).
func screenHas(t *testing.T, tm *teatest.TestModel, texts ...string) {
	t.Helper()
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool {
		for _, s := range texts {
			if !bytes.Contains(b, []byte(s)) {
				return false
			}
		}
		return true
	}, teatest.WithDuration(20*time.Second), teatest.WithCheckInterval(20*time.Millisecond))
}
