package main

import (
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/client/clienttest"
)

// midnight is when the day windows of these fixtures reset.
var midnight = time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)

func dayVerdict(v budget.Verdict) budget.Verdict {
	v.Window, v.ResetsAt = "day", midnight
	return v
}

var daily = api.Bottle{
	Bottle: budget.Bottle{Slug: "cc-1", Agent: "claude-code", State: budget.CutOff, CreatedAt: ts0,
		StateReason: "bottle budget cc-1 exhausted for the day: 5000000 of 5000000 claude tokens used (resets at 2026-11-22T00:00:00Z)",
		Budget:      budget.Limits{"claude": {{Tokens: 5_000_000, Window: budget.DayWindow}, {Tokens: 20_000_000, Window: budget.RollingWindow(5, 'h')}}}},
	Usage: map[string]int64{"claude": 7_000_000},
	Held:  map[string]int64{"claude": 0},
	Verdicts: []budget.Verdict{
		dayVerdict(verdictFor("cc-1", "claude", budget.Scope{Kind: budget.ScopeBottle, ID: "cc-1"}, 5_000_000, 5_000_000)),
	},
	Limits: []budget.LimitUse{
		{Scope: budget.Scope{Kind: budget.ScopeBottle, ID: "cc-1"}, Provider: "claude", Limit: 5_000_000, Window: "day", Used: 5_000_000, ResetsAt: midnight, Exhausted: true},
		{Scope: budget.Scope{Kind: budget.ScopeBottle, ID: "cc-1"}, Provider: "claude", Limit: 20_000_000, Window: "5h", Used: 6_000_000, Remaining: 14_000_000},
	},
}

func TestBottleShowWindows(t *testing.T) {
	srv := clienttest.NewServer(t)
	srv.Reply("GET /v1/bottles/{slug}", 200, daily)
	r := runAt(t, srv, "bottle", "show", "cc-1")
	wantCode(t, r, 0)
	for _, want := range []string{
		"budget      claude=5M/day+20M/5h\n",
		"claude    7M    0     bottle/cc-1  5M/day  0     100%  no: bottle budget cc-1 exhausted\n",
		"SCOPE        PROVIDER  LIMIT  WINDOW  USED  LEFT  %     RESETS\n",
		"bottle/cc-1  claude    5M     day     5M    0     100%  2026-11-22T00:00:00Z\n",
		"bottle/cc-1  claude    20M    5h      6M    14M   30%   rolling\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}
}

func TestStatusWindows(t *testing.T) {
	st := status
	st.Global = []budget.Verdict{dayVerdict(verdictFor("", "claude", budget.Scope{Kind: budget.ScopeGlobal, ID: "-"}, 50_000_000, 10_000_000))}
	st.Global[0].Window, st.Global[0].ResetsAt = "month", time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	st.Limits = []budget.LimitUse{
		{Scope: budget.Scope{Kind: budget.ScopeGlobal, ID: "-"}, Provider: "claude", Limit: 50_000_000, Window: "month", Used: 10_000_000, Remaining: 40_000_000, ResetsAt: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)},
	}
	srv := clienttest.NewServer(t)
	srv.Reply("GET /v1/status", 200, st)
	r := runAt(t, srv, "status")
	wantCode(t, r, 0)
	for _, want := range []string{
		"claude    10M   0     50M/month  40M   20%  yes\n",
		"global  claude    50M    month   10M   40M   20%  2026-12-01T00:00:00Z\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}
}

func TestBudgetSetWindowed(t *testing.T) {
	srv := clienttest.NewServer(t)
	srv.Reply("PUT /v1/budgets/{scope}/{id...}", 200, api.Budget{Scope: "bottle", ID: "dev-1",
		Limits: budget.Limits{"claude": {{Tokens: 5_000_000, Window: budget.DayWindow}, {Tokens: 50_000_000, Window: budget.MonthWindow}}},
		Sources: []api.BudgetLimit{
			{Scope: "bottle", ID: "dev-1", Provider: "claude", Limit: 5_000_000, Window: "day", Source: "runtime"},
			{Scope: "bottle", ID: "dev-1", Provider: "claude", Limit: 50_000_000, Window: "month", Source: "runtime"},
		}})
	r := runAt(t, srv, "budget", "set", "bottle/dev-1", "claude=5M/day+50M/month")
	wantCode(t, r, 0)
	if got, want := srv.Last().Body, `{"claude":["5000000/day","50000000/month"]}`; strings.TrimSpace(string(got)) != want {
		t.Errorf("sent %s, want %s", got, want)
	}
	if want := "bottle/dev-1  claude    5M/day     runtime  yes\nbottle/dev-1  claude    50M/month  runtime  yes\n"; !strings.Contains(r.stdout, want) {
		t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
	}
	for _, bad := range []string{"claude=5M/fortnight", "claude=5M/0h", "claude=5M/1.5h"} {
		r := runAt(t, srv, "budget", "set", "bottle/dev-1", bad)
		if r.code != 2 || !strings.Contains(r.stderr, "invalid") {
			t.Errorf("%s: code %d stderr %q, want a usage error naming the problem", bad, r.code, r.stderr)
		}
	}
}
