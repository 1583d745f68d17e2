package fleet_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/fleet"
	"github.com/bot-bottle/bottlecap/internal/pgtest"
	"github.com/bot-bottle/bottlecap/internal/tcpproxy"
	"github.com/bot-bottle/bottlecap/internal/testutil"
	"github.com/bot-bottle/bottlecap/store"
)

// ledger is a real local ledger in t's temp dir.
func ledger(t *testing.T) *store.DB {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "bot-bottle.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// appendReports appends n reports named prefix-0… to the ledger, one
// commit each, as single ingests do.
func appendReports(t *testing.T, st *store.DB, prefix string, n int) {
	t.Helper()
	for i := range n {
		r := budget.Report{ID: fmt.Sprintf("%s-%d", prefix, i), Bottle: "b1", Provider: []string{"claude", "codex"}[i%2],
			Usage: budget.Usage{Input: int64(i + 1)}, Complete: true, TS: shipTS, Counted: int64(i + 1)}
		if _, err := st.AppendReports(context.Background(), []budget.Report{r}); err != nil {
			t.Fatal(err)
		}
	}
}

// member starts a member of host on dsn shipping st, stopped when t ends.
func member(t *testing.T, dsn, host string, st *store.DB) *fleet.Member {
	t.Helper()
	m := fleet.NewMember(fleet.Config{
		Fleet:  &budget.Fleet{Postgres: dsn, Host: host, Budget: budget.Limits{}},
		Ledger: st, BatchSize: 50,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return m
}

// shippedAll is "" once Postgres holds exactly the ledger's reports for
// host, each once, and the host usage equals their sums; else what differs.
func shippedAll(t *testing.T, st *store.DB, dsn, host string) string {
	t.Helper()
	ctx := context.Background()
	local, err := st.ReportsAfter(ctx, 0, 1_000_000)
	if err != nil {
		return err.Error()
	}
	db, err := fleet.Open(ctx, dsn)
	if err != nil {
		return err.Error()
	}
	defer db.Close()
	rows, err := db.Pool().Query(ctx, "SELECT id, counted FROM fleet_reports WHERE host = $1", host)
	if err != nil {
		return err.Error()
	}
	remote := map[string]int64{}
	for rows.Next() {
		var id string
		var n int64
		if err := rows.Scan(&id, &n); err != nil {
			return err.Error()
		}
		remote[id] = n
	}
	if len(remote) != len(local) {
		return fmt.Sprintf("Postgres holds %d reports of %s, the ledger %d", len(remote), host, len(local))
	}
	sums := map[string]int64{}
	for _, r := range local {
		if n, ok := remote[r.ID]; !ok || n != r.Counted {
			return fmt.Sprintf("report %s: in Postgres %v with %d, want %d", r.ID, ok, n, r.Counted)
		}
		sums[r.Provider] += r.Counted
	}
	for provider, want := range sums {
		var got int64
		if err := db.Pool().QueryRow(ctx, "SELECT shipped FROM fleet_host_usage WHERE host = $1 AND provider = $2", host, provider).Scan(&got); err != nil {
			return err.Error()
		}
		if got != want {
			return fmt.Sprintf("%s usage of %s is %d, the ledger sums %d", provider, host, got, want)
		}
	}
	return ""
}

func TestMemberShipsTheLedgerAndItsCursor(t *testing.T) {
	dsn := pgtest.Database(t)
	st := ledger(t)
	appendReports(t, st, "before", 120) // a backlog: three batches
	m := member(t, dsn, "box", st)
	appendReports(t, st, "after", 30)
	testutil.Until(t, testutil.Within, "the ledger shipped", func() string { return shippedAll(t, st, dsn, "box") })
	testutil.Eventually(t, "the cursor saved at the last seq", func() bool {
		seq, err := st.FleetCursor(context.Background())
		return err == nil && seq == 150
	})
	testutil.Eventually(t, "caught up, lag 0", func() bool {
		s := m.Shipping()
		return s.Cursor == 150 && s.Lag == 0 && s.Err == ""
	})
	testutil.Eventually(t, "the view shows the host", func() bool {
		h, ok := m.View().Host("box")
		return ok && h.ShippedSeq == 150 && h.Lifetime["claude"] > 0 && h.Live()
	})
}

func TestASecondMemberForTheSameHostIsRefused(t *testing.T) {
	dsn := pgtest.Database(t)
	first := member(t, dsn, "box", ledger(t))
	testutil.Eventually(t, "the first member claimed box", func() bool { _, ok := first.View().Host("box"); return ok })
	second := fleet.NewMember(fleet.Config{Fleet: &budget.Fleet{Postgres: dsn, Host: "box"}, Ledger: ledger(t)})
	err := second.Connect(ctxT(t))
	var ce *fleet.ClaimError
	if !errors.As(err, &ce) || ce.Instance != first.Instance() {
		t.Errorf("second Connect: %v, want a *ClaimError naming %s", err, first.Instance())
	}
}

func TestMemberLosesNothingAcrossAPostgresRestart(t *testing.T) {
	srv := pgtest.New(t)
	dsn := pgtest.DatabaseOn(t, srv)
	st := ledger(t)
	member(t, dsn, "box", st)
	var wg sync.WaitGroup
	wg.Go(func() { appendReports(t, st, "during", 400) })
	testutil.Eventually(t, "some reports shipped", func() bool {
		seq, _ := st.FleetCursor(context.Background())
		return seq > 0
	})
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	appendReports(t, st, "after", 10)
	testutil.Until(t, testutil.Within, "everything shipped once", func() string { return shippedAll(t, st, dsn, "box") })
}

func TestMemberCatchesUpAfterAPartition(t *testing.T) {
	srv := pgtest.Shared(t)
	direct := pgtest.Database(t)
	proxy, err := tcpproxy.Start(srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	st := ledger(t)
	m := member(t, pgtest.Via(direct, proxy.Addr()), "box", st)
	appendReports(t, st, "before", 20)
	testutil.Until(t, testutil.Within, "shipped before the cut", func() string { return shippedAll(t, st, direct, "box") })

	proxy.Cut()
	appendReports(t, st, "cut", 30)
	testutil.Eventually(t, "shipping fails during the cut, and lags", func() bool { s := m.Shipping(); return s.Err != "" && s.Lag > 0 })
	if msg := shippedAll(t, st, direct, "box"); msg == "" {
		t.Fatal("reports appended during the cut reached Postgres through a cut proxy")
	}
	proxy.Heal()
	testutil.Until(t, testutil.Within, "caught up after the heal", func() string { return shippedAll(t, st, direct, "box") })
	testutil.Eventually(t, "shipping healthy again", func() bool { s := m.Shipping(); return s.Err == "" && s.Lag == 0 })
}

func TestAMemberRestartedOnItsLedgerTakesItsHostBack(t *testing.T) {
	dsn := pgtest.Database(t)
	st := ledger(t)
	cfg := fleet.Config{Fleet: &budget.Fleet{Postgres: dsn, Host: "box"}, Ledger: st}
	first := fleet.NewMember(cfg)
	if err := first.Connect(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	first.Run(ctx) // stops at once, as a crashed daemon would, leaving its claim live
	again := fleet.NewMember(cfg)
	if err := again.Connect(ctxT(t)); err != nil {
		t.Fatalf("the same ledger claiming its host again: %v", err)
	}
	if again.Instance() != first.Instance() || again.Instance() == "" {
		t.Errorf("instances %q then %q, want the ledger's both times", first.Instance(), again.Instance())
	}
	cancelled, stop := context.WithCancel(context.Background())
	stop()
	again.Run(cancelled)
}
