package controller_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/controller"
	"github.com/bot-bottle/bottlecap/daemon/daemontest"
	"github.com/bot-bottle/bottlecap/internal/testutil"
)

// Windowed limits through the real socket and ledger (SPEC section 12),
// on a daemon whose clock the test moves.

// startClockDaemon runs a daemon on settings s whose clock is clk, with
// an enforcer that finishes every action at once.
func startClockDaemon(t *testing.T, s *budget.Settings, clk *testutil.Clock) *daemon {
	t.Helper()
	d := daemontest.Start(t, daemontest.Options{Settings: s, Enforcer: &fakeEnforcer{}, Clock: clk})
	return &daemon{Daemon: d, t: t, dir: d.Dir, sock: d.Sock, db: d.DB, c: d.Client}
}

func TestWindowedLimitsOverTheSocket(t *testing.T) {
	clk := testutil.NewClock(noon)
	d := startClockDaemon(t, nil, clk)
	code, body := d.raw(http.MethodPut, "/v1/bottles/cc-1", "application/json",
		`{"agent":"claude-code","budget":{"claude":["100/day","1k/month"]},"agent_budgets":{"rev":{"claude":"50/5h"}}}`)
	if code != http.StatusOK {
		t.Fatalf("register: %d %s", code, body)
	}
	var b api.Bottle
	if err := json.Unmarshal([]byte(body), &b); err != nil {
		t.Fatal(err)
	}
	if got := b.Budget["claude"].String(); got != "100/day+1000/month" {
		t.Errorf("registered claude limits %s, want 100/day+1000/month", got)
	}
	if !strings.Contains(body, `"claude":["100/day","1000/month"]`) {
		t.Errorf("the bottle's JSON does not list the limits as written: %s", body)
	}
	for _, bad := range []struct{ body, want string }{
		{`{"budget":{"claude":"5M/fortnight"}}`, `budget: claude: invalid: "fortnight" is not a window`},
		{`{"budget":{"claude":"5M/0h"}}`, `budget: claude: invalid: "0h" is an empty rolling window`},
		{`{"budget":{"claude":["5M/day","6M/day"]}}`, "budget: claude: invalid: two limits for the same window"},
		{`{"agent_budgets":{"rev":{"claude":["1M","5M/1.5h"]}}}`, `agent_budgets.rev: claude: [1]: invalid: "1.5h" is not a whole number of hours`},
	} {
		code, body := d.raw(http.MethodPut, "/v1/bottles/cc-1", "application/json", bad.body)
		if code != http.StatusBadRequest || !strings.Contains(errorText(body), bad.want) {
			t.Errorf("%s: %d %s, want 400 containing %q", bad.body, code, body, bad.want)
		}
	}
	code, body = d.raw(http.MethodPut, "/v1/budgets/global/-", "application/json", `{"claude": ["5M/fortnight"]}`)
	if code != http.StatusBadRequest || !strings.Contains(errorText(body), `claude: [0]: invalid: "fortnight" is not a window`) {
		t.Errorf("bad global window: %d %s", code, body)
	}
	code, body = d.raw(http.MethodPut, "/v1/budgets/global/-", "application/json", `{"claude": ["2k/day", "20k/month"]}`)
	if code != http.StatusOK || !strings.Contains(body, `"claude":["2000/day","20000/month"]`) {
		t.Errorf("global windows: %d %s", code, body)
	}

	d.ingest(report("a", "cc-1", "", "claude", 60))
	v := d.verdict("cc-1", "", "claude")
	if !v.Allowed || v.Window != "day" || v.Used != 60 || !v.ResetsAt.Equal(noon.Add(12*time.Hour)) {
		t.Errorf("verdict %+v, want the day window with 60 used, resetting at midnight", v)
	}
	d.ingest(report("b", "cc-1", "", "claude", 40))
	eventually(t, "cc-1 cut off by its day", func() bool { return d.verdict("cc-1", "", "claude").State == budget.CutOff })
	v = d.verdict("cc-1", "", "claude")
	if v.Allowed || !strings.Contains(v.Reason, "exhausted for the day") {
		t.Errorf("verdict %+v, want a denial naming the day", v)
	}
	bottle, err := d.c.Bottle(context.Background(), "cc-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(bottle.Limits) != 2 || bottle.Limits[0].Window != "day" || !bottle.Limits[0].Exhausted || bottle.Limits[1].Window != "month" || bottle.Limits[1].Used != 100 {
		t.Errorf("bottle limits %+v, want the exhausted day and the month", bottle.Limits)
	}

	code, metrics := d.raw(http.MethodGet, "/metrics", "", "")
	for _, want := range []string{
		`bottlecap_limit_tokens{id="cc-1",provider="claude",scope="bottle",window="day"} 100`,
		`bottlecap_used_tokens{id="cc-1",provider="claude",scope="bottle",window="day"} 100`,
		`bottlecap_remaining_tokens{id="cc-1",provider="claude",scope="bottle",window="day"} 0`,
		`bottlecap_used_tokens{id="-",provider="claude",scope="global",window="month"} 100`,
	} {
		if code != http.StatusOK || !strings.Contains(metrics, want) {
			t.Errorf("/metrics (%d) lacks %s", code, want)
		}
	}

	clk.Advance(12 * time.Hour)
	eventually(t, "cc-1 restored at midnight", func() bool { return d.verdict("cc-1", "", "claude").State == budget.Active })
	if v := d.verdict("cc-1", "", "claude"); !v.Allowed || v.Used != 0 {
		t.Errorf("after midnight: %+v, want allowed with the new day empty", v)
	}
	eventually(t, "the cutoff and the restore done", func() bool { return d.auditCount("action_done") == 2 })

	// A restart rebuilds each window from the ledger: yesterday's 100
	// count for the month, not for today.
	d.ingest(report("c", "cc-1", "", "claude", 30))
	d.Stop()
	d.Restart()
	v = d.verdict("cc-1", "", "claude")
	if v.Used != 30 || v.Window != "day" {
		t.Errorf("after a restart: %+v, want today's 30", v)
	}
	bottle, err = d.c.Bottle(context.Background(), "cc-1")
	if err != nil {
		t.Fatal(err)
	}
	if bottle.Limits[1].Window != "month" || bottle.Limits[1].Used != 130 {
		t.Errorf("after a restart the month holds %+v, want 130", bottle.Limits[1])
	}
	var st api.Status
	if st, err = d.c.Status(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(st.Limits) != 2 || st.Limits[0].Window != "day" || st.Limits[0].Used != 30 || st.Limits[1].Used != 130 {
		t.Errorf("status limits %+v, want the global day (30) and month (130)", st.Limits)
	}
}

func TestLabelsAndSettingsTakeWindows(t *testing.T) {
	l, err := budget.ParseLimitSet("5M/day+50M/month")
	if err != nil {
		t.Fatal(err)
	}
	clk := testutil.NewClock(noon)
	s := budget.DefaultSettings()
	s.Budget = budget.Limits{"claude": l}
	d := startClockDaemon(t, s, clk)
	d.ingest(report("a", "x-1", "", "claude", 10))
	if v := d.verdict("x-1", "", "claude"); v.Window != "day" || v.Used != 10 || v.Limit != 5_000_000 {
		t.Errorf("verdict %+v, want the global day", v)
	}
	week, err := budget.ParseLimitSet("1k/week+100/5h")
	if err != nil {
		t.Fatal(err)
	}
	// What enforcement.ParseBudget makes of bot-bottle.budget=claude=1k/week+100/5h.
	if err := d.Server.Discover(context.Background(), controller.Container{ID: "c2", Bottle: "x-2", Budget: budget.Limits{"claude": week}}); err != nil {
		t.Fatal(err)
	}
	b, err := d.c.Bottle(context.Background(), "x-2")
	if err != nil || b.LabelBudget["claude"].String() != "1000/week+100/5h" {
		t.Errorf("labelled bottle %+v (%v), want its label's windows", b.LabelBudget, err)
	}
}

// errorText is the message of an error reply.
func errorText(body string) string {
	var e api.Error
	if json.Unmarshal([]byte(body), &e) != nil {
		return body
	}
	return e.Error
}
