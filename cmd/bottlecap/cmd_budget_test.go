package main

import (
	"strings"
	"testing"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/client/clienttest"
)

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
			srv.Reply("PUT /v1/budgets/{scope}/{id...}", 200, api.Budget{Scope: "bottle", ID: "dev-1", Limits: budget.Limits{"claude": budget.Lifetime(1000000), "codex": budget.Lifetime(1234567)}})
			r := runAt(t, srv, append([]string{"budget", "set"}, tt.args...)...)
			wantCode(t, r, 0)
			req := srv.Last()
			if req.Method != "PUT" || req.Path != tt.path || string(req.Body) != tt.body {
				t.Errorf("request: got %s %s %s, want PUT %s %s", req.Method, req.Path, req.Body, tt.path, tt.body)
			}
			want := "SCOPE         PROVIDER  LIMIT\nbottle/dev-1  claude    1M\nbottle/dev-1  codex     1234567\n"
			if r.stdout != want {
				t.Errorf("stdout:\n%s\nwant:\n%s", r.stdout, want)
			}
		})
	}
}

func TestBudgetGet(t *testing.T) {
	srv := clienttest.NewServer(t)
	all := []api.Budget{
		{Scope: "global", ID: "-", Limits: budget.Limits{"claude": budget.Lifetime(5000000)}},
		{Scope: "agent", ID: "dev-1/reviewer", Limits: budget.Limits{"claude": budget.Lifetime(200000)}},
	}
	srv.Reply("GET /v1/budgets", 200, all)
	srv.Reply("GET /v1/budgets/{scope}/{id...}", 200, all[1])

	r := runAt(t, srv, "budget", "get")
	wantCode(t, r, 0)
	want := "SCOPE                 PROVIDER  LIMIT\nglobal                claude    5M\nagent/dev-1/reviewer  claude    200k\n"
	if r.stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", r.stdout, want)
	}

	r = runAt(t, srv, "budget", "get", "agent/dev-1/reviewer", "--json")
	wantCode(t, r, 0)
	if got := srv.Last().Path; got != "/v1/budgets/agent/dev-1/reviewer" {
		t.Errorf("path %s", got)
	}
	wantJSON := "{\n  \"scope\": \"agent\",\n  \"id\": \"dev-1/reviewer\",\n  \"limits\": {\n    \"claude\": 200000\n  }\n}\n"
	if r.stdout != wantJSON {
		t.Errorf("stdout:\n%s\nwant:\n%s", r.stdout, wantJSON)
	}
}
