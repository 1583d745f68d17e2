package controller_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/daemon/daemontest"
	"github.com/bot-bottle/bottlecap/internal/testutil"
)

// TestPauseOverTheSocket: an operator pauses a bottle through the actions
// API; the gate, the status, the bottle and /metrics show it paused and
// why; restore brings it back; a killed bottle cannot be paused.
func TestPauseOverTheSocket(t *testing.T) {
	d := startDaemon(t, nil, &fakeEnforcer{})
	ctx := context.Background()
	d.register("b1", api.BottleRequest{Agent: "impl"})
	d.register("b2", api.BottleRequest{Agent: "impl"})
	act, err := d.c.Act(ctx, "b1", api.ActionRequest{Action: "pause", Reason: "looping on the tests"})
	if err != nil || act.Kind != "pause" || !act.Operator {
		t.Fatalf("pause: %+v, %v; want a pending operator pause", act, err)
	}
	eventually(t, "paused", func() bool { return d.verdict("b1", "", "claude").State == budget.Paused })
	if v := d.verdict("b1", "", "claude"); v.Allowed || v.Reason != "bottle b1 is paused: looping on the tests" {
		t.Errorf("verdict %+v, want denied naming the pause and its reason", v)
	}
	st, err := d.c.Status(ctx)
	if err != nil || st.BottleStates[budget.Paused] != 1 || st.BottleStates[budget.Active] != 1 {
		t.Errorf("status bottle states %v (%v), want 1 paused and 1 active", st.BottleStates, err)
	}
	if _, body := d.raw("GET", "/metrics", "", ""); !strings.Contains(body, `bottlecap_bottles{state="paused"} 1`) {
		t.Errorf("metrics do not count the paused bottle:\n%s", body)
	}
	if _, err := d.c.Act(ctx, "b1", api.ActionRequest{Action: "restore"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "restored", func() bool { return d.verdict("b1", "", "claude").State == budget.Active })

	if _, err := d.c.Act(ctx, "b2", api.ActionRequest{Action: "kill"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "killed", func() bool { return d.verdict("b2", "", "claude").State == budget.Killed })
	if _, err := d.c.Act(ctx, "b2", api.ActionRequest{Action: "pause"}); !errors.Is(err, budget.ErrConflict) {
		t.Errorf("pause of a killed bottle: %v, want ErrConflict", err)
	}
}

// TestRateRegistrationOverTheSocket: a registration's rate guards are
// strings per minute; anything else is a 400 naming the field that
// registers nothing.
func TestRateRegistrationOverTheSocket(t *testing.T) {
	d := startDaemon(t, nil, nil)
	for _, tt := range []struct{ body, says string }{
		{`{"rate": {"claude": 300000}}`, "rate: want string, got JSON number"},
		{`{"rate": {"claude": "300k"}}`, `rate.claude: invalid: \"300k\" has no unit`},
		{`{"rate": {"claude": "300k/hour"}}`, `rate.claude: invalid: \"300k/hour\": a rate guard is per minute only`},
		{`{"rate": {"no way": "1k/min"}}`, "rate"},
	} {
		status, body := d.raw("PUT", "/v1/bottles/b1", "application/json", tt.body)
		if status != 400 || !strings.Contains(body, tt.says) {
			t.Errorf("%s: got %d %s, want 400 saying %s", tt.body, status, body, tt.says)
		}
	}
	if _, err := d.c.Bottle(context.Background(), "b1"); err == nil {
		t.Error("a refused registration registered the bottle")
	}
	d.register("b1", api.BottleRequest{Rate: map[string]string{"claude": "300k/min"}})
	b, err := d.c.Bottle(context.Background(), "b1")
	if err != nil || len(b.RateGuards) != 1 || b.RateGuards[0] != (api.RateGuard{Provider: "claude", Guard: 300_000}) {
		t.Errorf("bottle %+v (%v), want its claude guard of 300000 with nothing in the last minute", b.RateGuards, err)
	}
}

// TestRateGuardOverTheSocket: a burst of reports through the socket trips
// the guard of the settings; the gate and the bottle name the rate; a
// quiet minute after the rate falls, the guard lifts its pause itself.
func TestRateGuardOverTheSocket(t *testing.T) {
	s := budget.DefaultSettings()
	s.Rate = budget.Rates{"claude": 1000}
	clk := testutil.NewClock(time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC))
	dd := daemontest.Start(t, daemontest.Options{Settings: s, Enforcer: &fakeEnforcer{}, Clock: clk})
	d := &daemon{Daemon: dd, t: t, dir: dd.Dir, sock: dd.Sock, db: dd.DB, c: dd.Client}
	d.register("b1", api.BottleRequest{Agent: "impl"})
	d.ingest(report("r1", "b1", "", "claude", 600), report("r2", "b1", "", "claude", 600))
	eventually(t, "paused by the guard", func() bool { return d.verdict("b1", "", "claude").State == budget.Paused })
	want := "rate guard: 1,200 claude tokens in the last minute, over 1k/min"
	if v := d.verdict("b1", "", "claude"); !strings.Contains(v.Reason, want) {
		t.Errorf("verdict %+v, want the reason %q", v, want)
	}
	clk.Advance(2 * budget.RateSpan)
	eventually(t, "lifted", func() bool { return d.verdict("b1", "", "claude").State == budget.Active })
	if acts := d.actions("done"); len(acts) != 2 || acts[1].Kind != "restore" || acts[1].Operator {
		t.Errorf("journal %+v, want the pause and the guard's restore", acts)
	}
}
