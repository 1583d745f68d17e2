package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/client/clienttest"
	"github.com/bot-bottle/bottlecap/controller"
	"github.com/bot-bottle/bottlecap/daemon/daemontest"
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

// heldEnforcer hands every job to the test, which finishes it (or not).
type heldEnforcer struct{ jobs chan controller.Job }

func (e heldEnforcer) Submit(j controller.Job) { e.jobs <- j }

// waitingDaemon is a real daemon whose actions the test finishes, with
// bottle dev-1 registered.
func waitingDaemon(t *testing.T) (*daemontest.Daemon, heldEnforcer) {
	t.Helper()
	enf := heldEnforcer{jobs: make(chan controller.Job, 8)}
	d := daemontest.Start(t, daemontest.Options{Enforcer: enf})
	if _, err := d.Client.PutBottle(context.Background(), "dev-1", api.BottleRequest{Agent: "implementer"}); err != nil {
		t.Fatal(err)
	}
	return d, enf
}

// runAsync runs a command line in-process in the background.
func runAsync(t *testing.T, args ...string) <-chan result {
	done := make(chan result, 1)
	go func() { done <- runCLI(t, nil, args...) }()
	return done
}

// notYet fails if the command already returned.
func notYet(t *testing.T, done <-chan result) {
	t.Helper()
	select {
	case r := <-done:
		t.Fatalf("returned before the action finished: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	default:
	}
}

// TestActionWait runs `--wait` against a real daemon: the command returns
// only once the enforcer has finished the action; done is exit 0, failed
// is exit 1 saying why.
func TestActionWait(t *testing.T) {
	t.Run("done", func(t *testing.T) {
		d, enf := waitingDaemon(t)
		done := runAsync(t, "cutoff", "dev-1", "--wait", "--socket", d.Sock)
		job := <-enf.jobs
		notYet(t, done)
		job.Finished(1, nil)
		r := <-done
		wantCode(t, r, 0)
		if want := fmt.Sprintf("cutoff dev-1: action %d done\n", job.Action.ID); r.stdout != want || r.stderr != "" {
			t.Errorf("stdout %q, stderr %q; want %q", r.stdout, r.stderr, want)
		}
	})
	t.Run("failed", func(t *testing.T) {
		d, enf := waitingDaemon(t)
		done := runAsync(t, "kill", "dev-1", "--wait", "--socket", d.Sock)
		job := <-enf.jobs
		job.Attempted(1, errors.New("engine: timeout"))
		notYet(t, done)
		job.Finished(2, errors.New("engine: no such network"))
		r := <-done
		wantCode(t, r, 1)
		want := fmt.Sprintf("bottlecap kill: action %d failed after 2 attempt(s): engine: no such network\n", job.Action.ID)
		if r.stderr != want || r.stdout != "" {
			t.Errorf("stdout %q, stderr %q; want stderr %q", r.stdout, r.stderr, want)
		}
	})
	t.Run("json", func(t *testing.T) {
		d, enf := waitingDaemon(t)
		done := runAsync(t, "freeze", "dev-1", "--wait", "--json", "--socket", d.Sock)
		job := <-enf.jobs
		job.Finished(1, nil)
		r := <-done
		wantCode(t, r, 0)
		var a api.Action
		if err := json.Unmarshal([]byte(r.stdout), &a); err != nil || a.ID != job.Action.ID || a.Status != "done" || a.Kind != "freeze" {
			t.Errorf("stdout:\n%s\nwant the done action (%v)", r.stdout, err)
		}
	})
}

// TestActionWaitTimeout: an action still pending at --timeout is exit 3,
// saying that the daemon keeps trying.
func TestActionWaitTimeout(t *testing.T) {
	d, enf := waitingDaemon(t)
	r := runCLI(t, nil, "pause", "dev-1", "--wait", "--timeout", "300ms", "--socket", d.Sock)
	wantCode(t, r, exitTimeout)
	job := <-enf.jobs
	want := fmt.Sprintf("bottlecap pause: action %d still pending after 300ms; the daemon keeps trying (see: bottlecap actions)\n", job.Action.ID)
	if r.stderr != want {
		t.Errorf("stderr %q, want %q", r.stderr, want)
	}
	r = runCLI(t, nil, "restore", "dev-1", "--wait", "--timeout", "300ms", "--json", "--socket", d.Sock)
	wantCode(t, r, exitTimeout)
	var a api.Action
	if err := json.Unmarshal([]byte(r.stdout), &a); err != nil || a.Status != "pending" || a.Kind != "restore" {
		t.Errorf("--json stdout:\n%s\nwant the pending action (%v)", r.stdout, err)
	}
}

// TestKillAndFreezeAsk: at a terminal, kill and freeze ask and act only on
// yes (the default is no); --yes, or a standard input that is not a
// terminal (a script), does not ask. cutoff never asks.
func TestKillAndFreezeAsk(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		tty    bool
		answer string
		asks   bool
		acts   bool
	}{
		{"kill, yes", []string{"kill", "dev-1"}, true, "y\n", true, true},
		{"kill, YES", []string{"kill", "dev-1"}, true, "YES\n", true, true},
		{"kill, no", []string{"kill", "dev-1"}, true, "n\n", true, false},
		{"kill, enter", []string{"kill", "dev-1"}, true, "\n", true, false},
		{"kill, end of input", []string{"kill", "dev-1"}, true, "", true, false},
		{"kill --yes", []string{"kill", "dev-1", "--yes"}, true, "", false, true},
		{"kill -y", []string{"kill", "-y", "dev-1"}, true, "", false, true},
		{"kill from a script", []string{"kill", "dev-1"}, false, "", false, true},
		{"freeze, yes", []string{"freeze", "dev-1"}, true, "yes\n", true, true},
		{"freeze, no", []string{"freeze", "dev-1"}, true, "no\n", true, false},
		{"freeze from a script", []string{"freeze", "dev-1"}, false, "", false, true},
		{"cutoff at a terminal", []string{"cutoff", "dev-1"}, true, "", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := clienttest.NewServer(t)
			srv.Reply("POST /v1/bottles/{slug}/actions", 202, api.Action{ID: 7, Bottle: "dev-1", Kind: tt.args[0], Status: "pending", Operator: true})
			env := map[string]string{"_stdin": tt.answer, "BOTTLECAP_SOCKET": srv.Socket}
			if tt.tty {
				env["_tty"] = "1"
			}
			r := runCLI(t, env, tt.args...)
			question := "bottle dev-1? "
			if asked := strings.Contains(r.stderr, question) && strings.Contains(r.stderr, "[y/N]"); asked != tt.asks {
				t.Errorf("asked %v, want %v; stderr %q", asked, tt.asks, r.stderr)
			}
			if acted := len(srv.Requests()) == 1; acted != tt.acts {
				t.Errorf("acted %v, want %v", acted, tt.acts)
			}
			if tt.acts {
				wantCode(t, r, 0)
				return
			}
			wantCode(t, r, 1)
			if !strings.Contains(r.stderr, "not confirmed; nothing was done") {
				t.Errorf("stderr %q, want it to say nothing was done", r.stderr)
			}
		})
	}
}
