package daemon_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/client"
	"github.com/bot-bottle/bottlecap/daemon/daemontest"
	"github.com/bot-bottle/bottlecap/internal/pgtest"
	"github.com/bot-bottle/bottlecap/internal/tcpproxy"
	"github.com/bot-bottle/bottlecap/internal/testutil"
)

// The fleet budget across daemons (SPEC section 14): in-process daemons,
// each with a home and a ledger of its own, all on one real Postgres.

// fleetMember starts a daemon named host in the fleet at dsn whose
// settings give claude a fleet budget of limit, its leases lease tokens
// and living 3 s.
func fleetMember(t *testing.T, host, dsn, limit string, lease int64, failOpen bool) *daemontest.Daemon {
	t.Helper()
	set, err := budget.ParseLimitSet(limit)
	if err != nil {
		t.Fatal(err)
	}
	f := &budget.Fleet{Postgres: dsn, Host: host, Timezone: time.UTC, Budget: budget.Limits{"claude": set}, Lease: lease, FailOpen: failOpen}
	s := budget.DefaultSettings()
	s.Fleet = f
	return daemontest.Start(t, daemontest.Options{Settings: s, Fleet: f, FleetLeaseTTL: 3 * time.Second})
}

// spender spends tokens of claude for one bottle of one daemon, a
// report of size at a time, each admitted first: by the gate with the
// report's size as its estimate, or by an allowance of that size which
// the report then settles.
type spender struct {
	c         *client.Client
	bottle    string
	size      int64
	allowance bool
	ids       *atomic.Int64
}

// run spends until the daemon denies for good (the fleet exhausted, or
// the bottle stopped by the fleet's crossing) or 100 asks in a row are
// denied, and returns what it spent.
func (s spender) run(ctx context.Context, t *testing.T) (spent int64) {
	denied := 0
	for denied < 100 && ctx.Err() == nil {
		allowance, reason, ok := s.admit(ctx, t)
		if !ok {
			if strings.Contains(reason, "fleet budget exhausted") || strings.Contains(reason, "bottle "+s.bottle+" is") {
				return spent
			}
			denied++
			time.Sleep(10 * time.Millisecond)
			continue
		}
		denied = 0
		r := api.Report{Report: budget.Report{ID: fmt.Sprintf("%s-%d", s.bottle, s.ids.Add(1)), Bottle: s.bottle, Agent: "a", Provider: "claude",
			Usage: budget.Usage{Input: s.size}}, Allowance: allowance}
		if _, err := s.c.Ingest(ctx, []api.Report{r}); err != nil {
			t.Errorf("report %s: %v", r.ID, err)
			return spent
		}
		spent += s.size
	}
	return spent
}

// admit asks the gate or for an allowance; ok is whether size tokens may
// be spent, reason why not.
func (s spender) admit(ctx context.Context, t *testing.T) (allowance, reason string, ok bool) {
	if !s.allowance {
		v, err := s.c.Verdict(ctx, client.VerdictQuery{Bottle: s.bottle, Agent: "a", Provider: "claude", Estimate: s.size})
		if err != nil {
			t.Errorf("verdict: %v", err)
			return "", err.Error(), false
		}
		return "", v.Reason, v.Allowed
	}
	a, err := s.c.Allow(ctx, api.AllowanceRequest{Bottle: s.bottle, Agent: "a", Provider: "claude", Tokens: s.size})
	if err != nil {
		t.Errorf("allowance: %v", err)
		return "", err.Error(), false
	}
	if a.Granted < s.size {
		if err := s.c.ReleaseAllowance(ctx, a.ID); err != nil {
			t.Errorf("release: %v", err)
		}
		return "", a.Verdict.Reason, false
	}
	return a.ID, "", true
}

// localTotal is a daemon's lifetime usage of claude, from its status.
func localTotal(t *testing.T, d *daemontest.Daemon) int64 {
	t.Helper()
	st, err := d.Client.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range st.Global {
		if v.Provider == "claude" {
			return v.Used
		}
	}
	return 0
}

// fleetShipped is what Postgres holds of host's claude usage, -1 when
// the status does not show the host yet.
func fleetShipped(t *testing.T, d *daemontest.Daemon, host string) int64 {
	t.Helper()
	st, err := d.Client.Status(context.Background())
	if err != nil || st.Fleet == nil {
		t.Fatalf("status: %v (fleet %v)", err, st.Fleet)
	}
	for _, h := range st.Fleet.Hosts {
		if h.Host == host {
			return h.Used["claude"]
		}
	}
	return -1
}

// cutter is a proxy to the shared Postgres the test can cut, and the DSN
// of a fresh database through it. Call closeAfter once the daemons using
// it are started: it is closed before they stop, so that they stop
// without waiting on a partition.
func cutter(t *testing.T) (proxy *tcpproxy.Proxy, direct, via string) {
	t.Helper()
	srv := pgtest.Shared(t)
	direct = pgtest.Database(t)
	proxy, err := tcpproxy.Start(srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	return proxy, direct, pgtest.Via(direct, proxy.Addr())
}

func closeAfter(t *testing.T, proxy *tcpproxy.Proxy) { t.Cleanup(func() { proxy.Close() }) }

// TestFleetThreeDaemonsSpendOneBudget: three daemons, each with two gate
// spenders and two allowance spenders at once, spend one fleet budget of
// 100,000 tokens in reports of 500. The fleet's total never passes the
// limit by more than the bound: per host, what its gate admitted and had
// in flight, 2 reports of 500 (allowances admit nothing their lease does
// not cover). Every host spends, the fleet is spent nearly to its limit,
// and Postgres ends with exactly what the three ledgers hold.
func TestFleetThreeDaemonsSpendOneBudget(t *testing.T) {
	const (
		limit, size, hosts, gates = 100_000, 500, 3, 2
		bound                     = hosts * gates * size
	)
	dsn := pgtest.Database(t)
	var ds []*daemontest.Daemon
	for i := range hosts {
		ds = append(ds, fleetMember(t, fmt.Sprint("h", i), dsn, fmt.Sprint(limit), 2000, false))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var ids atomic.Int64
	var wg sync.WaitGroup
	spent := make([]atomic.Int64, hosts)
	for i, d := range ds {
		for j := range 4 {
			sp := spender{c: d.Client, bottle: fmt.Sprintf("b%d-%d", i, j), size: size, allowance: j >= gates, ids: &ids}
			wg.Go(func() { spent[i].Add(sp.run(ctx, t)) })
		}
	}
	wg.Wait()
	var total int64
	for i, d := range ds {
		local := localTotal(t, d)
		if local != spent[i].Load() {
			t.Errorf("h%d's ledger holds %d, its spenders reported %d", i, local, spent[i].Load())
		}
		if local == 0 {
			t.Errorf("h%d spent nothing of the fleet budget", i)
		}
		total += local
	}
	t.Logf("fleet total %d of %d (bound %d)", total, limit, bound)
	if total > limit+bound {
		t.Errorf("the fleet spent %d, past its limit of %d by more than the bound %d", total, limit, bound)
	}
	if total < limit*9/10 {
		t.Errorf("the fleet spent %d of %d: leases left most of it unspent", total, limit)
	}
	for i, d := range ds {
		host := fmt.Sprint("h", i)
		testutil.Eventually(t, host+"'s usage shipped", func() bool { return fleetShipped(t, ds[0], host) == localTotal(t, d) })
	}
	metrics, err := ds[0].Client.Metrics(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		fmt.Sprintf(`bottlecap_fleet_host_used_tokens{host="h2",provider="claude"} %d`, localTotal(t, ds[2])),
		`bottlecap_limit_tokens{id="-",provider="claude",scope="fleet",window="life"} 100000`,
		`bottlecap_fleet_postgres_reachable 1`,
		`bottlecap_fleet_host_lag_seconds{host="h1"}`,
		`bottlecap_fleet_lease_ceiling_tokens{provider="claude"}`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// TestFleetPartition: a daemon cut off from Postgres keeps serving its
// local scopes and spends what its lease has left, then denies for the
// fleet, naming it and Postgres; once healed it ships what it spent and
// takes a lease again. Another daemon keeps spending meanwhile.
func TestFleetPartition(t *testing.T) {
	proxy, dsn, via := cutter(t)
	cut := fleetMember(t, "cut", via, "1M", 5000, false)
	other := fleetMember(t, "other", dsn, "1M", 5000, false)
	closeAfter(t, proxy)
	ctx := context.Background()
	var ids atomic.Int64
	sp := spender{c: cut.Client, bottle: "b1", size: 500, allowance: true, ids: &ids}
	if _, _, ok := sp.admit(ctx, t); !ok {
		t.Fatal("no lease before the cut")
	}
	if _, err := cut.Client.PutBottle(ctx, "capped", api.BottleRequest{Agent: "a", Budget: budget.Limits{"codex": budget.Lifetime(300)}}); err != nil {
		t.Fatal(err)
	}
	proxy.Cut()
	testutil.Eventually(t, "a fleet denial naming Postgres", func() bool {
		id, reason, ok := sp.admit(ctx, t)
		if ok {
			sp.report(ctx, t, id)
		}
		return !ok && strings.Contains(reason, "fleet budget") && strings.Contains(reason, "Postgres is unreachable")
	})
	st, err := cut.Client.Status(ctx)
	if err != nil || st.Fleet == nil || len(st.Fleet.Budgets) != 1 {
		t.Fatalf("status: %+v, %v", st.Fleet, err)
	}
	if b := st.Fleet.Budgets[0]; localTotal(t, cut) > b.Ceiling || st.Fleet.Reachable {
		t.Errorf("cut off: spent %d, lease ceiling %d, reachable %v; want no more than the ceiling, unreachable", localTotal(t, cut), b.Ceiling, st.Fleet.Reachable)
	}
	// The local scopes still decide what the fleet does not limit, and
	// reports are still committed.
	codex := func(id, bottle string, n int64) {
		if _, err := cut.Client.Ingest(ctx, []api.Report{{Report: budget.Report{ID: id, Bottle: bottle, Agent: "a", Provider: "codex", Usage: budget.Usage{Input: n}}}}); err != nil {
			t.Fatal(err)
		}
	}
	codex("c1", "capped", 400)
	codex("c2", "free", 400)
	if v, _ := cut.Client.Verdict(ctx, client.VerdictQuery{Bottle: "free", Agent: "a", Provider: "codex"}); !v.Allowed {
		t.Errorf("codex for an unlimited bottle while cut off: %s", v.Reason)
	}
	if b, _ := cut.Client.Bottle(ctx, "capped"); b.State != budget.Pending {
		t.Errorf("capped past its own codex budget while cut off: state %s, want pending", b.State)
	}
	// The other host spends on.
	osp := spender{c: other.Client, bottle: "o1", size: 500, allowance: true, ids: &ids}
	if _, _, ok := osp.admit(ctx, t); !ok {
		t.Error("the host that reaches Postgres is denied")
	}
	proxy.Heal()
	testutil.Eventually(t, "the cut host's usage shipped once healed", func() bool {
		return fleetShipped(t, other, "cut") == localTotal(t, cut)
	})
	testutil.Eventually(t, "a lease again once healed", func() bool {
		_, _, ok := sp.admit(ctx, t)
		return ok
	})
}

// report spends one report of size, settling the allowance admit
// granted for it.
func (s spender) report(ctx context.Context, t *testing.T, allowance string) {
	r := api.Report{Report: budget.Report{ID: fmt.Sprintf("%s-%d", s.bottle, s.ids.Add(1)), Bottle: s.bottle, Agent: "a", Provider: "claude",
		Usage: budget.Usage{Input: s.size}}, Allowance: allowance}
	if _, err := s.c.Ingest(ctx, []api.Report{r}); err != nil {
		t.Errorf("report: %v", err)
	}
}

// TestFleetLeaseExpiresWhileCutOff: a host cut off with room left in its
// lease stops spending at the lease's local deadline.
func TestFleetLeaseExpiresWhileCutOff(t *testing.T) {
	proxy, _, via := cutter(t)
	d := fleetMember(t, "cut", via, "1M", 50_000, false)
	closeAfter(t, proxy)
	ctx := context.Background()
	v, err := d.Client.Verdict(ctx, client.VerdictQuery{Bottle: "b1", Agent: "a", Provider: "claude", Estimate: 10})
	if err != nil || !v.Allowed {
		t.Fatalf("before the cut: %v %v", err, v.Reason)
	}
	proxy.Cut()
	testutil.Eventually(t, "the lease ended at its deadline", func() bool {
		v, err := d.Client.Verdict(ctx, client.VerdictQuery{Bottle: "b1", Agent: "a", Provider: "claude"})
		return err == nil && !v.Allowed && strings.Contains(v.Reason, "lease of the fleet's claude budget has expired, and Postgres is unreachable")
	})
}

// TestFleetFailOpen: with fleet.fail_open a host cut off from Postgres
// spends past its lease, and the fleet's limit, against its local
// scopes; healed, the fleet bounds it again.
func TestFleetFailOpen(t *testing.T) {
	proxy, _, via := cutter(t)
	d := fleetMember(t, "open", via, "50k", 5000, true)
	closeAfter(t, proxy)
	ctx := context.Background()
	big := client.VerdictQuery{Bottle: "b1", Agent: "a", Provider: "claude", Estimate: 100_000}
	if v, err := d.Client.Verdict(ctx, big); err != nil || v.Allowed {
		t.Fatalf("reachable: %v %s; want 100000 of a 50000 fleet denied", err, v.Reason)
	}
	proxy.Cut()
	testutil.Eventually(t, "the local scopes alone decide", func() bool {
		v, err := d.Client.Verdict(ctx, big)
		return err == nil && v.Allowed && v.Scope.Kind != budget.ScopeFleet
	})
	proxy.Heal()
	testutil.Eventually(t, "the fleet bounds it again", func() bool {
		v, err := d.Client.Verdict(ctx, big)
		return err == nil && !v.Allowed && v.Scope.Kind == budget.ScopeFleet
	})
}
