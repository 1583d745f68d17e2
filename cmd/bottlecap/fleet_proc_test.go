package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/client"
	"github.com/bot-bottle/bottlecap/internal/pgtest"
	"github.com/bot-bottle/bottlecap/internal/tcpproxy"
	"github.com/bot-bottle/bottlecap/internal/testutil"
)

// The fleet's end-to-end tests: real `bottlecap serve` processes, each on
// a home of its own, shipping to one real Postgres.

// fleetHome is a new home whose settings name the daemon host in the fleet.
func fleetHome(t *testing.T, host string) string {
	t.Helper()
	home := newHome(t)
	settings := fmt.Sprintf("fleet:\n  host: %s\n", host)
	if err := os.WriteFile(filepath.Join(home, "settings.yml"), []byte(settings), 0o600); err != nil {
		t.Fatal(err)
	}
	return home
}

// startFleetServe runs a daemon on home (made by fleetHome) shipping to
// dsn, given through $BOTTLECAP_FLEET_DSN as an operator keeping its
// password out of the settings would. Without the engine: the fleet needs
// none.
func startFleetServe(t *testing.T, home, dsn string) *proc {
	t.Helper()
	return startServeWith(t, home, []string{"--docker=false"}, "BOTTLECAP_FLEET_DSN="+dsn)
}

// ingestAll sends n reports of bottle b1 to p's daemon, one at a time and
// each until acknowledged (across the daemon's restarts), named prefix-i.
func ingestAll(t *testing.T, sock func() string, prefix string, n int) {
	t.Helper()
	for i := range n {
		r := api.Report{Report: budget.Report{ID: fmt.Sprintf("%s-%04d", prefix, i), Bottle: "b1", Agent: "a",
			Provider: []string{"claude", "codex"}[i%2], Usage: budget.Usage{Input: int64(i%9 + 1)}}}
		c := client.New(sock(), client.WithRetry(60*time.Second), client.WithBackoff(5*time.Millisecond, 100*time.Millisecond))
		ok := sendUntilAcked(c, r)
		c.Close()
		if !ok {
			t.Errorf("report %s never acknowledged", r.ID)
			return
		}
	}
}

// fleetMatches is "" when Postgres holds exactly home's ledger for host,
// each report once with its count, and the host's usage per provider is
// the ledger's sum; else what differs.
func fleetMatches(t *testing.T, home, dsn, host string) string {
	t.Helper()
	local := map[string]int64{}
	sums := map[string]int64{}
	rows, err := ledger(t, home).Query(`SELECT id, provider, counted FROM reports`)
	if err != nil {
		return err.Error()
	}
	for rows.Next() {
		var id, provider string
		var n int64
		if err := rows.Scan(&id, &provider, &n); err != nil {
			rows.Close()
			return err.Error()
		}
		local[id], sums[provider] = n, sums[provider]+n
	}
	rows.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err.Error()
	}
	defer conn.Close(ctx)
	rrows, err := conn.Query(ctx, `SELECT id, counted FROM fleet_reports WHERE host = $1`, host)
	if err != nil {
		return err.Error()
	}
	remote, err := pgx.CollectRows(rrows, pgx.RowToStructByPos[struct {
		ID string
		N  int64
	}])
	if err != nil {
		return err.Error()
	}
	if len(remote) != len(local) {
		return fmt.Sprintf("Postgres holds %d reports of %s, its ledger %d", len(remote), host, len(local))
	}
	for _, r := range remote {
		if n, ok := local[r.ID]; !ok || n != r.N {
			return fmt.Sprintf("report %s of %s: in the ledger %v with %d, in Postgres with %d", r.ID, host, ok, n, r.N)
		}
	}
	for provider, want := range sums {
		var got int64
		if err := conn.QueryRow(ctx, `SELECT shipped FROM fleet_host_usage WHERE host = $1 AND provider = $2`, host, provider).Scan(&got); err != nil {
			return fmt.Sprintf("%s usage of %s: %v", provider, host, err)
		}
		if got != want {
			return fmt.Sprintf("%s usage of %s is %d in Postgres, its ledger sums %d", provider, host, got, want)
		}
	}
	return ""
}

// TestFleetDaemonKilledMidShipmentLosesAndDoublesNothing kills a shipping
// daemon with SIGKILL twice while reports arrive: once restarted on its
// ledger, it ships every report exactly once, and the host's usage in
// Postgres is its ledger's.
func TestFleetDaemonKilledMidShipmentLosesAndDoublesNothing(t *testing.T) {
	const clients, perClient, kills = 4, 150, 2
	dsn := pgtest.Database(t)
	home := fleetHome(t, "box")
	var mu sync.Mutex
	p := startFleetServe(t, home, dsn)
	sock := func() string { mu.Lock(); defer mu.Unlock(); return p.sock }
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() { ingestAll(t, sock, fmt.Sprintf("c%d", i), perClient) })
	}
	for k := range kills {
		testutil.Until(t, 2*time.Minute, "reports shipped before the kill", func() string {
			n := shippedCount(t, dsn, "box")
			if n < (k+1)*clients*perClient/(kills+2) {
				return fmt.Sprintf("%d shipped", n)
			}
			return ""
		})
		mu.Lock()
		p.kill()
		p = startFleetServe(t, home, dsn)
		mu.Unlock()
	}
	wg.Wait()
	testutil.Until(t, 2*time.Minute, "the ledger shipped exactly", func() string { return fleetMatches(t, home, dsn, "box") })
	if !strings.Contains(p.stderr.String(), "fleet: host claimed") {
		t.Errorf("the restarted daemon did not take its host back:\n%s", p.stderr.String())
	}
}

// shippedCount is how many reports of host Postgres holds.
func shippedCount(t *testing.T, dsn, host string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0
	}
	defer conn.Close(ctx)
	var n int
	conn.QueryRow(ctx, `SELECT count(*) FROM fleet_reports WHERE host = $1`, host).Scan(&n)
	return n
}

// TestFleetRefusesASecondDaemonWithTheSameHost starts a daemon on another
// home under a host name a live daemon holds: it exits, saying so.
func TestFleetRefusesASecondDaemonWithTheSameHost(t *testing.T) {
	dsn := pgtest.Database(t)
	startFleetServe(t, fleetHome(t, "box"), dsn)
	second := fleetHome(t, "box")
	cmd := exec.Command(bottlecapBinary(t), "serve", "--docker=false")
	cmd.Env = append(os.Environ(), "BOT_BOTTLE_HOME="+second, "BOTTLECAP_SOCKET=", "BOTTLECAP_FLEET_DSN="+dsn)
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		cmd.Process.Kill()
		<-done
		t.Fatalf("the second daemon kept running:\n%s", out)
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Errorf("the second daemon exited with %v, want a failure", err)
	}
	for _, want := range []string{"host box is already claimed by a live daemon", "set fleet.host"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("its output lacks %q:\n%s", want, out)
		}
	}
}

// TestThreeFleetDaemonsShipEverythingThroughARestartAndAPartition runs
// three daemons on separate homes shipping to one Postgres while reports
// arrive at each; Postgres restarts mid-run, and the third daemon, which
// reaches Postgres through a proxy, is cut off for a while. Once healed
// every ledger is in Postgres exactly.
func TestThreeFleetDaemonsShipEverythingThroughARestartAndAPartition(t *testing.T) {
	const perDaemon = 200
	srv := pgtest.New(t)
	dsn := pgtest.DatabaseOn(t, srv)
	proxy, err := tcpproxy.Start(srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	hosts := []string{"h1", "h2", "h3"}
	homes := map[string]string{}
	var wg sync.WaitGroup
	for _, host := range hosts {
		homes[host] = fleetHome(t, host)
		via := dsn
		if host == "h3" {
			via = pgtest.Via(dsn, proxy.Addr())
		}
		p := startFleetServe(t, homes[host], via)
		wg.Go(func() { ingestAll(t, func() string { return p.sock }, host, perDaemon) })
	}
	testutil.Until(t, 2*time.Minute, "shipping under way", func() string {
		if n := shippedCount(t, dsn, "h1"); n < perDaemon/4 {
			return fmt.Sprintf("h1 shipped %d", n)
		}
		return ""
	})
	proxy.Cut()
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	cutAt := shippedCount(t, dsn, "h3")
	testutil.Until(t, 2*time.Minute, "h1 shipping after the restart", func() string {
		if n := shippedCount(t, dsn, "h1"); n < perDaemon/2 {
			return fmt.Sprintf("h1 shipped %d", n)
		}
		return ""
	})
	if n := shippedCount(t, dsn, "h3"); n != cutAt {
		t.Errorf("h3 shipped %d reports through a cut proxy (%d before)", n-cutAt, cutAt)
	}
	proxy.Heal()
	wg.Wait()
	for _, host := range hosts {
		testutil.Until(t, 2*time.Minute, host+" shipped exactly", func() string { return fleetMatches(t, homes[host], dsn, host) })
	}
}
