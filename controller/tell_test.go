package controller_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/controller"
	"github.com/bot-bottle/bottlecap/internal/testutil"
)

// capturedLog is a slog handler that keeps every record at or above info,
// rendered as "LEVEL message key=value …".
type capturedLog struct {
	mu    sync.Mutex
	lines []string
}

func (h *capturedLog) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }
func (h *capturedLog) WithAttrs([]slog.Attr) slog.Handler           { return h }
func (h *capturedLog) WithGroup(string) slog.Handler                { return h }

func (h *capturedLog) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", r.Level, r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%s", a.Key, a.Value)
		return true
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lines = append(h.lines, b.String())
	return nil
}

// take returns the lines logged since the last take.
func (h *capturedLog) take() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := h.lines
	h.lines = nil
	return out
}

// heardNotifier keeps the notices it is given, and the sinks.
type heardNotifier struct {
	mu      sync.Mutex
	notices []budget.Notice
	sinks   []budget.NotifySink
}

func (n *heardNotifier) Notify(x budget.Notice) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.notices = append(n.notices, x)
}

func (n *heardNotifier) SetSinks(s []budget.NotifySink) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.sinks = s
}

// kinds are the kinds of the notices heard since the last call.
func (n *heardNotifier) take() []budget.Notice {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := n.notices
	n.notices = nil
	return out
}

// tellRig is a core on a test clock with a claude budget of 1000 over
// every bottle (warn at 80%), a rate guard of 10,000 a minute, a captured
// log and a notifier that keeps what it hears.
type tellRig struct {
	*rateRig
	log   *capturedLog
	heard *heardNotifier
}

func newTellRig(t *testing.T) *tellRig {
	t.Helper()
	s := budget.DefaultSettings()
	s.Budget = budget.Limits{"claude": budget.Lifetime(1000)}
	s.Rate = budget.Rates{"claude": 10_000}
	f := newFakeLedger()
	clk := testutil.NewClock(rateStart)
	enf := &heldEnforcer{}
	tr := &tellRig{log: &capturedLog{}, heard: &heardNotifier{}}
	c, err := controller.NewCore(context.Background(), controller.Config{Ledger: f, Ingester: &fakeIngester{f: f}, Enforcer: enf,
		Settings: s, Now: clk.Now, AfterFunc: clk.AfterFunc, Log: slog.New(tr.log), Notifier: tr.heard})
	if err != nil {
		t.Fatalf("NewCore: %v", err)
	}
	tr.rateRig = &rateRig{rig: &rig{t: t, f: f, enf: enf, core: c}, clock: clk}
	return tr
}

// wantLines checks the lines logged since the last check, each against a
// prefix.
func (r *tellRig) wantLines(want ...string) {
	r.t.Helper()
	got := r.log.take()
	if len(got) != len(want) {
		r.t.Fatalf("logged %d lines, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			r.t.Errorf("line %d:\n got %s\nwant %s…", i, got[i], want[i])
		}
	}
}

// wantNotices checks the kinds of the notices handed over since the last
// check, and returns them.
func (r *tellRig) wantNotices(want ...budget.NoticeKind) []budget.Notice {
	r.t.Helper()
	got := r.heard.take()
	var kinds []budget.NoticeKind
	for _, n := range got {
		kinds = append(kinds, n.Kind)
	}
	if !slices.Equal(kinds, want) {
		r.t.Errorf("notices %q, want %q", kinds, want)
	}
	return got
}

// TestLogsEveryStep: a warn, a crossing, the action it starts and its
// outcome, done or failed, each log one line at the default level with the
// budget, the bottle and the action, and each but the start is a notice.
func TestLogsEveryStep(t *testing.T) {
	r := newTellRig(t)
	r.register("b1", api.BottleRequest{Agent: "a"})
	r.register("b2", api.BottleRequest{Agent: "a"})
	r.log.take()

	r.send("b1", 800)
	r.wantLines(`WARN budget past its warn threshold bottles=b1,b2 scope=global scope_id=- provider=claude used=800 limit=1000 reason=global budget past its warn threshold`)
	warn := r.wantNotices(budget.NoticeWarn)
	if n := warn[0]; n.Scope != budget.ScopeGlobal || n.Used != 800 || n.Limit != 1000 || !slices.Equal(n.Bottles, []string{"b1", "b2"}) || n.TS.IsZero() || n.Text == "" {
		t.Errorf("warn notice %+v, want the global budget at 800 of 1000 over b1 and b2, with a time and a text", n)
	}

	r.send("b2", 200)
	r.wantLines(
		`WARN budget exhausted bottles=b1,b2 scope=global scope_id=- provider=claude used=1000 limit=1000 action=cutoff reason=global budget exhausted`,
		`INFO action started bottle=b1 action=cutoff action_id=1 by=budget reason=global budget exhausted`,
		`INFO action started bottle=b2 action=cutoff action_id=2 by=budget reason=global budget exhausted`,
	)
	crossing := r.wantNotices(budget.NoticeCrossing)
	if n := crossing[0]; n.Action != budget.ActCutoff || !strings.HasSuffix(n.Text, ": cutoff b1, b2") {
		t.Errorf("crossing notice %+v, want one for both bottles, saying what is done to them", n)
	}

	r.enf.job(t, 0).Finished(1, nil)
	r.enf.job(t, 1).Attempted(2, errors.New("engine unreachable"))
	r.enf.job(t, 1).Finished(3, errors.New("engine unreachable"))
	r.wantLines(
		`INFO action done bottle=b1 action=cutoff action_id=1 attempts=1 reason=global budget exhausted`,
		`WARN action attempt failed; retrying bottle=b2 action=cutoff action_id=2 attempt=2 err=engine unreachable`,
		`ERROR action failed bottle=b2 action=cutoff action_id=2 attempts=3 reason=global budget exhausted`,
	)
	done := r.wantNotices(budget.NoticeActionDone, budget.NoticeActionFailed)
	if n := done[1]; n.Error != "engine unreachable" || !strings.Contains(n.Text, "failed after 3 attempt(s): engine unreachable") {
		t.Errorf("failure notice %+v, want the error and the attempts", n)
	}
}

// TestLogsTheRateGuard: a trip and a lift each log a line and are notices
// of kind rate, around the actions they start.
func TestLogsTheRateGuard(t *testing.T) {
	r := newTellRig(t)
	r.register("b1", api.BottleRequest{Agent: "a"})
	r.core.SetSettings(withBudget(nil)) // no budget: only the guard acts
	r.log.take()
	r.heard.take()
	for range 3 {
		r.send("b1", 4000)
	}
	r.wantLines(
		`WARN rate guard tripped bottle=b1 action=pause reason=rate guard: 12,000 claude tokens in the last minute`,
		`INFO action started bottle=b1 action=pause action_id=1 by=rate guard`,
	)
	r.finishAll(0)
	r.clock.Advance(2 * budget.RateSpan)
	r.wantLines(
		`INFO action done bottle=b1 action=pause`,
		`INFO rate guard lifted bottle=b1 action=restore reason=rate guard lifted: the rate stayed under its guard for a minute`,
		`INFO action started bottle=b1 action=restore action_id=2 by=rate guard`,
	)
	r.wantNotices(budget.NoticeRate, budget.NoticeActionDone, budget.NoticeRate)
}

// withBudget is the tell rig's settings with the given global budget.
func withBudget(l budget.Limits) *budget.Settings {
	s := budget.DefaultSettings()
	s.Budget = l
	s.Rate = budget.Rates{"claude": 10_000}
	s.Notify = []budget.NotifySink{{Name: "ops", Webhook: "http://127.0.0.1:9/"}}
	return s
}

// TestReloadHandsTheNotifierItsSinks: the sinks of reloaded settings are
// put in force in the notifier.
func TestReloadHandsTheNotifierItsSinks(t *testing.T) {
	r := newTellRig(t)
	r.core.SetSettings(withBudget(nil))
	r.heard.mu.Lock()
	defer r.heard.mu.Unlock()
	if len(r.heard.sinks) != 1 || r.heard.sinks[0].Name != "ops" {
		t.Errorf("notifier's sinks %+v, want the reloaded ops", r.heard.sinks)
	}
}

// TestWarnEventIsSnakeCase: the warn event on /v1/events names its fields
// as every other event does.
func TestWarnEventIsSnakeCase(t *testing.T) {
	s := budget.DefaultSettings()
	s.Budget = budget.Limits{"claude": budget.Lifetime(1000)}
	d := startDaemon(t, s, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := d.c.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "subscribed", func() bool { return d.metric("bottlecap_event_subscribers") == 1 })
	d.ingest(report("w1", "b1", "a", "claude", 850))
	var warn api.Event
	for e := range stream.C {
		if e.Type == "warn" {
			warn = e
			break
		}
	}
	var got map[string]any
	if err := json.Unmarshal(warn.Data, &got); err != nil {
		t.Fatalf("warn event data %s: %v", warn.Data, err)
	}
	want := map[string]any{"kind": "warn", "scope": "global", "scope_id": "-", "provider": "claude",
		"limit": 1000.0, "used": 850.0, "bottles": []any{"b1"}}
	for k, v := range want {
		if fmt.Sprint(got[k]) != fmt.Sprint(v) {
			t.Errorf("warn event %s = %v, want %v (data %s)", k, got[k], v, warn.Data)
		}
	}
	for k := range got {
		if strings.ToLower(k) != k {
			t.Errorf("warn event key %q is not snake_case (data %s)", k, warn.Data)
		}
	}
	if _, ok := got["ts"]; !ok {
		t.Errorf("warn event has no ts: %s", warn.Data)
	}
}
