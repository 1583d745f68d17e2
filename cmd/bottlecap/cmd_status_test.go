package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/client/clienttest"
)

var status = api.Status{
	Version: "0.1.0", PID: 4242, StartedAt: ts0, UptimeSeconds: 3725.6, Store: "/h/bot-bottle.db", Socket: "/h/run/bottlecap.sock",
	Precedence: "nearest", Bottles: 3, Reports: 12345, PendingActions: 1, Allowances: 2, Held: map[string]int64{"codex": 12500},
	Global: []budget.Verdict{verdictFor("", "claude", budget.Scope{Kind: budget.ScopeGlobal, ID: "-"}, 5000000, 5000000)},
	Docker: api.DockerStatus{Enabled: true, Reachable: true, APIVersion: "1.47"},
}

func TestStatus(t *testing.T) {
	srv := clienttest.NewServer(t)
	srv.Reply("GET /v1/status", 200, status)
	r := runAt(t, srv, "status")
	wantCode(t, r, 0)
	want := `bottlecap 0.1.0: running (pid 4242, up 1h2m5s)
socket           /h/run/bottlecap.sock
store            /h/bot-bottle.db
ledger           writable
docker           reachable (API 1.47)
precedence       nearest
bottles          3
reports          12345
pending actions  1
allowances       2, holding codex 12.5k

PROVIDER  USED  HELD  LIMIT  LEFT  %     ALLOWED
claude    5M    0     5M     0     100%  no: global budget exhausted
`
	if r.stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", r.stdout, want)
	}
}

func TestStatusJSON(t *testing.T) {
	srv := clienttest.NewServer(t)
	srv.Reply("GET /v1/status", 200, status)
	r := runAt(t, srv, "status", "--json")
	wantCode(t, r, 0)
	var got api.Status
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got.PID != 4242 || got.Docker.APIVersion != "1.47" {
		t.Errorf("stdout is not the status JSON (%v):\n%s", err, r.stdout)
	}
	if !strings.HasPrefix(r.stdout, "{\n  \"version\": \"0.1.0\",\n") {
		t.Errorf("not indented:\n%s", r.stdout)
	}
}

func TestStatusNoGlobalBudgetNoDocker(t *testing.T) {
	srv := clienttest.NewServer(t)
	srv.Reply("GET /v1/status", 200, api.Status{Version: "0.1.0", Docker: api.DockerStatus{Enabled: true, Error: "permission denied"}})
	r := runAt(t, srv, "status")
	wantCode(t, r, 0)
	for _, s := range []string{"unreachable: permission denied", "global budget: none set"} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("stdout lacks %q:\n%s", s, r.stdout)
		}
	}
}

func TestStatusReadOnlyLedger(t *testing.T) {
	srv := clienttest.NewServer(t)
	st := status
	st.StoreReadOnly, st.StoreError = true, "store opened read-only: denied"
	srv.Reply("GET /v1/status", 200, st)
	r := runAt(t, srv, "status")
	wantCode(t, r, 0)
	if want := "ledger           READ-ONLY, reports are refused: store opened read-only: denied\n"; !strings.Contains(r.stdout, want) {
		t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
	}
}

// TestStatusCountsBottlesByState: the bottles line says how many are in
// each state, paused ones included.
func TestStatusCountsBottlesByState(t *testing.T) {
	st := status
	st.BottleStates = map[budget.State]int{budget.Active: 1, budget.Paused: 2}
	srv := clienttest.NewServer(t)
	srv.Reply("GET /v1/status", 200, st)
	r := runAt(t, srv, "status")
	wantCode(t, r, 0)
	if want := "bottles          3 (1 active, 2 paused)\n"; !strings.Contains(r.stdout, want) {
		t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
	}
}

func TestStatusShowsDaemonID(t *testing.T) {
	srv := clienttest.NewServer(t)
	st := status
	st.Docker.DaemonID = "staging"
	srv.Reply("GET /v1/status", 200, st)
	r := runAt(t, srv, "status")
	wantCode(t, r, 0)
	if want := "daemon id        staging (takes only the containers labelled bot-bottle.daemon=staging)\n"; !strings.Contains(r.stdout, want) {
		t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
	}
}
