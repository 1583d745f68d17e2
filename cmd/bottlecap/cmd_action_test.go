package main

import (
	"strings"
	"testing"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/client/clienttest"
)

func TestActions(t *testing.T) {
	for _, kind := range []string{"cutoff", "pause", "freeze", "kill", "restore"} {
		t.Run(kind, func(t *testing.T) {
			srv := clienttest.NewServer(t)
			srv.Reply("POST /v1/bottles/{slug}/actions", 202, api.Action{ID: 7, Bottle: "dev-1", Kind: kind, Status: "pending", Operator: true})
			r := runAt(t, srv, kind, "dev-1", "--reason", "runaway loop")
			wantCode(t, r, 0)
			req := srv.Last()
			wantBody := `{"action":"` + kind + `","reason":"runaway loop"}`
			if req.Method != "POST" || req.Path != "/v1/bottles/dev-1/actions" || string(req.Body) != wantBody {
				t.Errorf("request: %s %s %s", req.Method, req.Path, req.Body)
			}
			if want := kind + " dev-1: action 7 pending"; !strings.HasPrefix(r.stdout, want) {
				t.Errorf("stdout %q, want %q", r.stdout, want)
			}
		})
	}
}

func TestActionDenied(t *testing.T) {
	srv := clienttest.NewServer(t)
	srv.Fail("POST /v1/bottles/{slug}/actions", 403, "uid 1001 is not an operator (settings operators:)")
	r := runAt(t, srv, "kill", "dev-1")
	wantCode(t, r, 1)
	if want := "bottlecap kill: uid 1001 is not an operator (settings operators:)\n"; r.stderr != want {
		t.Errorf("stderr %q, want %q", r.stderr, want)
	}
}

func TestActionList(t *testing.T) {
	srv := clienttest.NewServer(t)
	srv.Reply("GET /v1/actions", 200, []api.Action{
		{ID: 8, Bottle: "dev-1", Kind: "freeze", Status: "failed", Attempts: 5, LastError: "engine: no such container", UpdatedAt: ts0},
		{ID: 7, Bottle: "dev-1", Kind: "cutoff", Status: "done", Operator: true, Attempts: 1, Reason: "runaway", UpdatedAt: ts0},
	})
	r := runAt(t, srv, "actions", "--status", "failed")
	wantCode(t, r, 0)
	if got := srv.Last().Query; got != "status=failed" {
		t.Errorf("query %q", got)
	}
	want := `ID  BOTTLE  ACTION  STATUS                             BY        ATTEMPTS  UPDATED               REASON
8   dev-1   freeze  failed: engine: no such container  budget    5         2026-11-21T20:00:00Z  -
7   dev-1   cutoff  done                               operator  1         2026-11-21T20:00:00Z  runaway
`
	if r.stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", r.stdout, want)
	}
}
