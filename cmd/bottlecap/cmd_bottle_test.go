package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/client/clienttest"
)

var ts0 = time.Date(2026, 11, 21, 20, 0, 0, 0, time.UTC)

func verdictFor(bottle, provider string, scope budget.Scope, limit, used int64) budget.Verdict {
	v := budget.Verdict{Allowed: used < limit, Bottle: bottle, Agent: "implementer", Provider: provider,
		Scope: scope, Limit: limit, Used: used, Remaining: max(limit-used, 0), State: budget.Active}
	if !v.Allowed {
		v.Reason = scope.String() + " exhausted"
	}
	return v
}

var dev1 = api.Bottle{
	Bottle: budget.Bottle{Slug: "dev-1", Agent: "implementer", Name: "dev", Parent: "root",
		Budget: budget.Limits{"claude": budget.Lifetime(1000000)}, AgentBudgets: map[string]budget.Limits{"reviewer": {"claude": budget.Lifetime(200000)}},
		LabelBudget: budget.Limits{"pi": budget.Lifetime(7000)},
		Shutdown:    budget.Freeze, Containers: []string{"abc123"}, State: budget.Active, CreatedAt: ts0},
	Usage: map[string]int64{"claude": 412000, "codex": 1500},
	Held:  map[string]int64{"claude": 100000, "codex": 0},
	Verdicts: []budget.Verdict{
		heldFor(verdictFor("dev-1", "claude", budget.Scope{Kind: budget.ScopeBottle, ID: "dev-1"}, 1000000, 412000), 100000),
		verdictFor("dev-1", "codex", budget.Scope{Kind: budget.ScopeGlobal, ID: "-"}, 2000000, 1999000),
	},
}

// heldFor is v with held tokens held by allowances at its scope.
func heldFor(v budget.Verdict, held int64) budget.Verdict {
	v.Held, v.Remaining = held, max(v.Remaining-held, 0)
	return v
}

var root = api.Bottle{
	Bottle: budget.Bottle{Slug: "root", State: budget.CutOff, StateReason: "operator", CreatedAt: ts0},
}

func TestBottleRegister(t *testing.T) {
	srv := clienttest.NewServer(t)
	srv.Reply("PUT /v1/bottles/{slug}", 200, dev1)
	r := runAt(t, srv, "bottle", "register", "dev-1", "--agent", "implementer", "--name", "dev", "--parent", "root",
		"--budget", "claude=1M,codex=500k", "--agent-budget", "reviewer:claude=200k", "--agent-budget", "reviewer:codex=1.5k",
		"--shutdown", "freeze", "--container", "abc123", "--container", "def,ghi", "--rate", "claude=300000/min,codex=1.5M/min", "--rate", "gemini=5k/min")
	wantCode(t, r, 0)
	req := srv.Last()
	if req.Method != "PUT" || req.Path != "/v1/bottles/dev-1" {
		t.Errorf("request: %s %s", req.Method, req.Path)
	}
	want := `{"agent":"implementer","name":"dev","parent":"root","budget":{"claude":1000000,"codex":500000},` +
		`"agent_budgets":{"reviewer":{"claude":200000,"codex":1500}},"shutdown":"freeze",` +
		`"rate":{"claude":"300k/min","codex":"1.5M/min","gemini":"5k/min"},"containers":["abc123","def","ghi"]}`
	if string(req.Body) != want {
		t.Errorf("body:\n got %s\nwant %s", req.Body, want)
	}
	for _, s := range []string{"bottle        dev-1", "budget        claude=1M", "agent budget  reviewer:claude=200k", "state         active"} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("stdout lacks %q:\n%s", s, r.stdout)
		}
	}
}

func TestBottleList(t *testing.T) {
	srv := clienttest.NewServer(t)
	srv.Reply("GET /v1/bottles", 200, []api.Bottle{root, dev1})
	r := runAt(t, srv, "bottle", "ls")
	wantCode(t, r, 0)
	want := `SLUG   AGENT        PARENT  STATE    PROVIDER  USED  HELD  SCOPE         LIMIT  LEFT  %
dev-1  implementer  root    active   claude    412k  100k  bottle/dev-1  1M     488k  41%
                                     codex     1.5k  0     global        2M     1k    99%
root   -            -       cut_off  -         -     -     -             -      -     -
`
	if r.stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", r.stdout, want)
	}
}

func TestBottleListJSON(t *testing.T) {
	srv := clienttest.NewServer(t)
	srv.Reply("GET /v1/bottles", 200, []api.Bottle{dev1})
	r := runAt(t, srv, "bottle", "ls", "--json")
	wantCode(t, r, 0)
	var got []api.Bottle
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || len(got) != 1 || got[0].Slug != "dev-1" {
		t.Fatalf("stdout is not the bottles' JSON (%v):\n%s", err, r.stdout)
	}
	if !strings.Contains(r.stdout, "\n  {\n    \"slug\": \"dev-1\",") {
		t.Errorf("not indented:\n%s", r.stdout)
	}
}

func TestBottleListEmpty(t *testing.T) {
	srv := clienttest.NewServer(t)
	srv.Reply("GET /v1/bottles", 200, []api.Bottle{})
	if r := runAt(t, srv, "bottle", "ls", "--json"); r.stdout != "[]\n" {
		t.Errorf("--json: got %q, want []", r.stdout)
	}
	if r := runAt(t, srv, "bottle", "ls"); !strings.HasPrefix(r.stdout, "no bottles") {
		t.Errorf("got %q", r.stdout)
	}
}

func TestBottleShow(t *testing.T) {
	srv := clienttest.NewServer(t)
	srv.Reply("GET /v1/bottles/{slug}", 200, dev1)
	r := runAt(t, srv, "bottle", "show", "dev-1")
	wantCode(t, r, 0)
	want := `bottle        dev-1
agent         implementer
name          dev
parent        root
state         active
shutdown      freeze
budget        claude=1M
label budget  pi=7k
agent budget  reviewer:claude=200k
containers    abc123
registered    2026-11-21T20:00:00Z

PROVIDER  USED  HELD  SCOPE         LIMIT  LEFT  %    ALLOWED
claude    412k  100k  bottle/dev-1  1M     488k  41%  yes
codex     1.5k  0     global        2M     1k    99%  yes
`
	if r.stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", r.stdout, want)
	}
	if got := srv.Last().Path; got != "/v1/bottles/dev-1" {
		t.Errorf("path %s", got)
	}
}

func TestBottleRemove(t *testing.T) {
	srv := clienttest.NewServer(t)
	srv.Reply("DELETE /v1/bottles/{slug}", 204, nil)
	r := runAt(t, srv, "bottle", "rm", "dev-1")
	wantCode(t, r, 0)
	if req := srv.Last(); req.Method != "DELETE" || req.Path != "/v1/bottles/dev-1" {
		t.Errorf("request %s %s", req.Method, req.Path)
	}
	if !strings.Contains(r.stdout, "forgot bottle dev-1") {
		t.Errorf("stdout %q", r.stdout)
	}
}

// TestBottleShowPausedByTheGuard: a bottle the rate guard paused shows
// why, what lifts it, and each guard with what the last minute brought.
func TestBottleShowPausedByTheGuard(t *testing.T) {
	b := api.Bottle{
		Bottle: budget.Bottle{Slug: "dev-2", Agent: "implementer", State: budget.Paused, ByRateGuard: true, CreatedAt: ts0,
			StateReason: "rate guard: 412,000 claude tokens in the last minute, over 300k/min"},
		RateGuards: []api.RateGuard{{Provider: "claude", Guard: 300_000, LastMinute: 412_000}, {Provider: "codex", Guard: 1_500_000}},
	}
	srv := clienttest.NewServer(t)
	srv.Reply("GET /v1/bottles/{slug}", 200, b)
	r := runAt(t, srv, "bottle", "show", "dev-2")
	wantCode(t, r, 0)
	for _, line := range []string{
		"state       paused (rate guard: 412,000 claude tokens in the last minute, over 300k/min); the guard lifts it once the rate has stayed under it for a minute\n",
		"rate guard  claude 300k/min (412k in the last minute)\n",
		"rate guard  codex 1.5M/min (0 in the last minute)\n",
	} {
		if !strings.Contains(r.stdout, line) {
			t.Errorf("stdout lacks %q:\n%s", line, r.stdout)
		}
	}
}
