package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/client/clienttest"
	"github.com/bot-bottle/bottlecap/daemon/daemontest"
)

// devSources are bottle dev-1's limits: claude at runtime over the
// settings' default for its name, codex from its registration.
var devSources = []api.BudgetLimit{
	{Scope: "bottle", ID: "dev-1", Provider: "claude", Limit: 1000000, Window: "life", Source: "runtime"},
	{Scope: "bottle", ID: "dev-1", Provider: "claude", Limit: 5000000, Window: "day", Source: "settings", Overridden: true},
	{Scope: "bottle", ID: "dev-1", Provider: "codex", Limit: 1234567, Window: "life", Source: "registration"},
}

func TestBudgetSet(t *testing.T) {
	tests := []struct {
		args []string
		path string
		body string
	}{
		{[]string{"global", "claude=5M"}, "/v1/budgets/global/-", `{"claude":5000000}`},
		{[]string{"bottle/dev-1", "claude=1M", "codex=500k"}, "/v1/budgets/bottle/dev-1", `{"claude":1000000,"codex":500000}`},
		{[]string{"agent/dev-1/reviewer", "claude=200k,codex=5_000"}, "/v1/budgets/agent/dev-1/reviewer", `{"claude":200000,"codex":5000}`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			srv := clienttest.NewServer(t)
			srv.Reply("PUT /v1/budgets/{scope}/{id...}", 200, api.Budget{Scope: "bottle", ID: "dev-1", Sources: devSources,
				Limits: budget.Limits{"claude": budget.Lifetime(1000000), "codex": budget.Lifetime(1234567)}})
			r := runAt(t, srv, append([]string{"budget", "set"}, tt.args...)...)
			wantCode(t, r, 0)
			req := srv.Last()
			if req.Method != "PUT" || req.Path != tt.path || string(req.Body) != tt.body {
				t.Errorf("request: got %s %s %s, want PUT %s %s", req.Method, req.Path, req.Body, tt.path, tt.body)
			}
			want := "SCOPE         PROVIDER  LIMIT    SOURCE        IN FORCE\n" +
				"bottle/dev-1  claude    1M       runtime       yes\n" +
				"bottle/dev-1  claude    5M/day   settings      no: runtime overrides it\n" +
				"bottle/dev-1  codex     1234567  registration  yes\n"
			if r.stdout != want {
				t.Errorf("stdout:\n%s\nwant:\n%s", r.stdout, want)
			}
		})
	}
}

func TestBudgetGet(t *testing.T) {
	srv := clienttest.NewServer(t)
	all := append([]api.BudgetLimit{{Scope: "global", ID: "-", Provider: "claude", Limit: 50000000, Window: "month", Source: "settings"}}, devSources...)
	srv.Reply("GET /v1/budgets", 200, all)
	one := api.Budget{Scope: "agent", ID: "dev-1/reviewer", Limits: budget.Limits{"claude": budget.Lifetime(200000)},
		Sources: []api.BudgetLimit{{Scope: "agent", ID: "dev-1/reviewer", Provider: "claude", Limit: 200000, Window: "life", Source: "registration"}}}
	srv.Reply("GET /v1/budgets/{scope}/{id...}", 200, one)

	want := "SCOPE         PROVIDER  LIMIT      SOURCE        IN FORCE\n" +
		"global        claude    50M/month  settings      yes\n" +
		"bottle/dev-1  claude    1M         runtime       yes\n" +
		"bottle/dev-1  claude    5M/day     settings      no: runtime overrides it\n" +
		"bottle/dev-1  codex     1234567    registration  yes\n"
	for _, sub := range []string{"get", "ls"} {
		r := runAt(t, srv, "budget", sub)
		wantCode(t, r, 0)
		if r.stdout != want {
			t.Errorf("budget %s, stdout:\n%s\nwant:\n%s", sub, r.stdout, want)
		}
	}

	r := runAt(t, srv, "budget", "ls", "--json")
	wantCode(t, r, 0)
	var got []api.BudgetLimit
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || len(got) != len(all) || !got[2].Overridden || got[2].Source != "settings" {
		t.Errorf("budget ls --json: %v %+v, want the daemon's list", err, got)
	}

	r = runAt(t, srv, "budget", "get", "agent/dev-1/reviewer", "--json")
	wantCode(t, r, 0)
	if got := srv.Last().Path; got != "/v1/budgets/agent/dev-1/reviewer" {
		t.Errorf("path %s", got)
	}
	var b api.Budget
	if err := json.Unmarshal([]byte(r.stdout), &b); err != nil || b.ID != "dev-1/reviewer" || len(b.Sources) != 1 || b.Limits["claude"].String() != "200000" {
		t.Errorf("budget get --json: %v %+v", err, b)
	}
}

// TestBudgetRm runs budget rm against a real daemon: a runtime limit
// goes and the settings' limit for the bottle's name is back in force; a
// registration's limit goes when no runtime limit overrides it; a limit
// from settings is refused, naming where to change it; a limit that is
// not there, or a scope the daemon does not know, is not found.
func TestBudgetRm(t *testing.T) {
	s := budget.DefaultSettings()
	s.Bottles["dev"] = budget.Defaults{Budget: budget.Limits{"claude": {{Tokens: 5_000_000, Window: budget.DayWindow}}}}
	d := daemontest.Start(t, daemontest.Options{Settings: s})
	ctx := context.Background()
	if _, err := d.Client.PutBottle(ctx, "dev-1", api.BottleRequest{Name: "dev", Budget: budget.Limits{"codex": budget.Lifetime(700)}}); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) result {
		return runCLI(t, nil, append(append([]string{"budget"}, args...), "--socket", d.Sock)...)
	}
	wantCode(t, run("set", "bottle/dev-1", "claude=1M"), 0)

	r := run("rm", "bottle/dev-1", "claude")
	wantCode(t, r, 0)
	if want := "removed claude 1M (runtime) at bottle/dev-1; in force now: 5M/day (settings)\n"; r.stdout != want {
		t.Errorf("rm claude, stdout:\n%s\nwant:\n%s", r.stdout, want)
	}

	r = run("rm", "bottle/dev-1", "claude")
	wantCode(t, r, 1)
	if want := "bottlecap budget rm: conflict: claude at bottle/dev-1 comes from settings.yml (bottles: dev: budget:); change it there, or override it at runtime (bottlecap budget set bottle/dev-1 claude=N)\n"; r.stderr != want {
		t.Errorf("rm claude again, stderr:\n%s\nwant:\n%s", r.stderr, want)
	}

	r = run("rm", "bottle/dev-1")
	wantCode(t, r, 0)
	if want := "removed codex 700 (registration) at bottle/dev-1; no codex limit at bottle/dev-1 now (wider scopes still apply)\n"; r.stdout != want {
		t.Errorf("rm every provider, stdout:\n%s\nwant:\n%s", r.stdout, want)
	}

	for _, tt := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"rm", "bottle/dev-1", "gemini"}, 1, "not found: no gemini limit at bottle/dev-1"},
		{[]string{"rm", "bottle/nobody"}, 1, `not found: bottle "nobody"`},
		{[]string{"rm", "global"}, 1, "not found: no limit at global"},
		{[]string{"rm"}, 2, "missing argument"},
		{[]string{"rm", "bottle"}, 2, "want global, bottle/SLUG or agent/SLUG/AGENT"},
		{[]string{"rm", "bottle/dev-1", "no/such"}, 2, `provider "no/such"`},
	} {
		r := run(tt.args...)
		if r.code != tt.code || !strings.Contains(r.stderr, tt.msg) {
			t.Errorf("budget %s: exit %d, stderr %q; want exit %d naming %q", strings.Join(tt.args, " "), r.code, r.stderr, tt.code, tt.msg)
		}
	}
}
