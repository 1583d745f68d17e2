package main

import (
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/client/clienttest"
)

func TestStatusFleet(t *testing.T) {
	st := status
	st.Fleet = &api.FleetStatus{Host: "ci-1", Reachable: false, Error: "no read of the fleet's Postgres for 4s", Hosts: []api.FleetHost{
		{Host: "ci-1", Used: map[string]int64{"claude": 1_200_000}, Lease: map[string]int64{"claude": 50_000}, LagMS: 1500, LastSeen: ts0.Add(3721600 * time.Millisecond)},
		{Host: "ci-2", Used: map[string]int64{"claude": 800_000, "codex": 5000}, Lease: map[string]int64{"claude": 20_000}, Expired: []string{"claude"}},
	}, Budgets: []budget.FleetState{{Provider: "claude", Known: true, Limit: 20_000_000, Window: "month", Used: 2_100_000, Held: 4000,
		Ceiling: 1_250_000, LeaseLive: true, LeaseRoom: 46_000, Remaining: 46_000}}}
	srv := clienttest.NewServer(t)
	srv.Reply("GET /v1/status", 200, st)
	r := runAt(t, srv, "status")
	wantCode(t, r, 0)
	want := `fleet: this host is ci-1; Postgres UNREACHABLE (no read of the fleet's Postgres for 4s): the fleet budget is spent only from this host's lease, then denied (fail_open: false)
FLEET   USED  HELD  LIMIT  WINDOW  LEFT   LEASE     HOST MAY SPEND
claude  2.1M  4k    20M    month   17.9M  to 1.25M  46k
HOST              USED                   LEASE               LAG   LAST SEEN
ci-1 (this host)  claude 1.2M            claude 50k          1.5s  4s ago
ci-2              claude 800k, codex 5k  claude 20k expired  0s    never
`
	if i := strings.Index(r.stdout, "fleet:"); i < 0 || r.stdout[i:] != want {
		t.Errorf("stdout:\n%s\nwant it to end with:\n%s", r.stdout, want)
	}
}
