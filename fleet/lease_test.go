package fleet_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/fleet"
	"github.com/bot-bottle/bottlecap/internal/testutil"
)

// shipped puts a report of counted tokens of claude for host in the fleet
// tables, as shipping does: the report, and the host's lifetime total
// raised by it (the insert raises the usage buckets itself).
func shipped(t *testing.T, db *fleet.DB, host string, counted int64, ts time.Time) {
	t.Helper()
	ctx := ctxT(t)
	id := fmt.Sprintf("r-%d", seq.Add(1))
	if _, err := db.Pool().Exec(ctx, `INSERT INTO fleet_reports (host, id, seq, bottle, provider, input, cache_read, cache_write, output, reasoning, complete, ts, counted)
		VALUES ($1, $2, 1, 'b', 'claude', $3, 0, 0, 0, 0, true, $4, $3)`, host, id, counted, ts.UnixNano()); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool().Exec(ctx, `INSERT INTO fleet_host_usage (host, provider, shipped) VALUES ($1, 'claude', $2)
		ON CONFLICT (host, provider) DO UPDATE SET shipped = fleet_host_usage.shipped + EXCLUDED.shipped`, host, counted); err != nil {
		t.Fatal(err)
	}
}

var seq atomic.Int64

func limits(t *testing.T, s string) budget.LimitSet {
	t.Helper()
	set, err := budget.ParseLimitSet(s)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// lease asks for want tokens past base for host, and fails the test on
// error.
func lease(t *testing.T, db *fleet.DB, host string, set budget.LimitSet, base, want int64) fleet.Lease {
	t.Helper()
	l, err := db.Lease(ctxT(t), fleet.LeaseAsk{Host: host, Provider: "claude", Base: base, Want: want, TTL: time.Minute, Limits: set, Loc: time.UTC})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestLeaseWithinEveryWindow: a grant is the most every window of the
// fleet limit leaves once shipped usage, the other hosts' reservations
// and the host's own unshipped usage are counted.
func TestLeaseWithinEveryWindow(t *testing.T) {
	db, _ := open(t)
	now := time.Now()
	set := limits(t, "100000+1000/day+5000/month")
	shipped(t, db, "b", 300, now)                     // today
	shipped(t, db, "b", 3000, now.AddDate(0, 0, -40)) // before this month: lifetime only
	shipped(t, db, "a", 100, now)
	// b's lease reserves 200 past what it shipped.
	lease(t, db, "b", set, 3300, 200)
	// a stands on 150 (50 unshipped): today is 300 + 100 shipped, 200
	// reserved by b, 50 unshipped of a's: 350 left of 1000.
	got := lease(t, db, "a", set, 150, 10_000)
	if got.Granted != 350 || got.Ceiling != 500 {
		t.Errorf("grant %d, ceiling %d; want 350 (what the day leaves), ceiling 500", got.Granted, got.Ceiling)
	}
	if got.Known.OwnShipped != 100 || len(got.Known.Windows) != 3 || got.Known.Windows[0].Used != 3400 || got.Known.Windows[1].Used != 400 {
		t.Errorf("known %+v, want a's 100 shipped, 3400 for life and 400 today", got.Known)
	}
	if !got.ExpiresAt.After(now) {
		t.Errorf("expires at %s, not after %s", got.ExpiresAt, now)
	}
	// The day leaves b 1000 - 400 shipped - 400 a's lease reserves.
	if b := lease(t, db, "b", set, 3300, 10_000); b.Granted != 200 {
		t.Errorf("b's renewal granted %d, want the 200 its own old lease held (the day's rest)", b.Granted)
	}
}

// TestLeaseRenewAndReturn: a renewal sets the ceiling anew from the base;
// a return brings it down to the base, freeing the rest for others.
func TestLeaseRenewAndReturn(t *testing.T) {
	db, _ := open(t)
	set := limits(t, "1000")
	if a := lease(t, db, "a", set, 0, 600); a.Granted != 600 {
		t.Fatalf("a granted %d, want 600", a.Granted)
	}
	if b := lease(t, db, "b", set, 0, 600); b.Granted != 400 {
		t.Fatalf("b granted %d, want the 400 a's lease leaves", b.Granted)
	}
	// a spent 250 (unshipped) and returns the rest.
	if r := lease(t, db, "a", set, 250, 0); r.Ceiling != 250 || r.Granted != 0 {
		t.Fatalf("a's return: ceiling %d granted %d, want 250 and 0", r.Ceiling, r.Granted)
	}
	if b := lease(t, db, "b", set, 0, 1000); b.Granted != 750 {
		t.Errorf("b's renewal granted %d, want 750: all but a's unshipped 250", b.Granted)
	}
	if n := scalar[int64](t, db, "SELECT count(*) FROM fleet_leases"); n != 2 {
		t.Errorf("%d lease rows, want one per host", n)
	}
}

// TestExpiredLeaseKeepsReserving: a lease whose host stopped renewing it
// still reserves its rest until that host ships past it or returns it.
func TestExpiredLeaseKeepsReserving(t *testing.T) {
	db, _ := open(t)
	set := limits(t, "1000")
	if _, err := db.Lease(ctxT(t), fleet.LeaseAsk{Host: "gone", Provider: "claude", Want: 700, TTL: time.Millisecond, Limits: set, Loc: time.UTC}); err != nil {
		t.Fatal(err)
	}
	if n := scalar[int64](t, db, "SELECT count(*) FROM fleet_leases WHERE expires_at > now()"); n != 0 {
		t.Fatalf("the 1 ms lease has not expired: %d live", n)
	}
	if b := lease(t, db, "b", set, 0, 1000); b.Granted != 300 {
		t.Fatalf("b granted %d beside an expired lease of 700; want 300", b.Granted)
	}
	shipped(t, db, "gone", 900, time.Now()) // it spent past its ceiling before it went
	if b := lease(t, db, "b", set, 0, 1000); b.Granted != 100 {
		t.Errorf("b granted %d once gone's 900 were shipped; want 100", b.Granted)
	}
}

// TestLeaseBaseBelowShipped: a host whose ledger holds less than it has
// shipped stands on what it shipped.
func TestLeaseBaseBelowShipped(t *testing.T) {
	db, _ := open(t)
	shipped(t, db, "a", 500, time.Now())
	if a := lease(t, db, "a", limits(t, "1000"), 0, 100); a.Ceiling != 600 || a.Granted != 100 {
		t.Errorf("ceiling %d granted %d, want 600 and 100", a.Ceiling, a.Granted)
	}
}

// TestConcurrentLeasesNeverOvercommit: six hosts asking 2000 each of
// 10000 at once, renewing over and over, are never granted together more
// than the limit.
func TestConcurrentLeasesNeverOvercommit(t *testing.T) {
	db, _ := open(t)
	set := limits(t, "10000/day")
	var wg sync.WaitGroup
	for h := range 6 {
		wg.Go(func() {
			for range 20 {
				_, err := db.Lease(ctxT(t), fleet.LeaseAsk{Host: fmt.Sprint("h", h), Provider: "claude", Want: 2000, TTL: time.Minute, Limits: set, Loc: time.UTC})
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	total := scalar[int64](t, db, "SELECT sum(ceiling)::bigint FROM fleet_leases WHERE provider = 'claude'")
	if total > 10_000 {
		t.Errorf("leases reserve %d of a 10000 limit", total)
	}
	if total < 2000 {
		t.Errorf("leases reserve %d: the last host to renew had at least 2000 to take", total)
	}
}

// TestLeaseRefusesAnIncompleteAsk: an ask without a host, limits or TTL
// changes nothing.
func TestLeaseRefusesAnIncompleteAsk(t *testing.T) {
	db, _ := open(t)
	for _, ask := range []fleet.LeaseAsk{
		{Provider: "claude", Want: 1, TTL: time.Minute, Limits: limits(t, "10")},
		{Host: "a", Provider: "claude", Want: 1, TTL: time.Minute},
		{Host: "a", Provider: "claude", Want: 1, Limits: limits(t, "10")},
		{Host: "a", Provider: "claude", Want: -1, TTL: time.Minute, Limits: limits(t, "10")},
	} {
		if _, err := db.Lease(ctxT(t), ask); err == nil {
			t.Errorf("%+v: no error", ask)
		}
	}
	if n := scalar[int64](t, db, "SELECT count(*) FROM fleet_leases"); n != 0 {
		t.Errorf("%d lease rows after refused asks", n)
	}
}

// TestLeaseReadsAfterItsLock: a grant waits for the provider's lock, and
// reads the fleet only once it holds it, so a grant committed while it
// waited is counted. The test holds the lock itself, commits another
// host's lease, and lets the waiting grant go.
func TestLeaseReadsAfterItsLock(t *testing.T) {
	db, _ := open(t)
	ctx := ctxT(t)
	set := limits(t, "1000")
	holder, err := db.Pool().Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Release()
	if _, err := holder.Exec(ctx, "SELECT pg_advisory_lock($1, hashtext('claude'))", fleet.LeaseLockSpace); err != nil {
		t.Fatal(err)
	}
	done := make(chan fleet.Lease, 1)
	go func() {
		l, err := db.Lease(ctx, fleet.LeaseAsk{Host: "a", Provider: "claude", Want: 800, TTL: time.Minute, Limits: set, Loc: time.UTC})
		if err != nil {
			t.Error(err)
		}
		done <- l
	}()
	testutil.Eventually(t, "the grant waits for the provider's lock", func() bool {
		return scalar[int64](t, db, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted") == 1
	})
	// Another grant, as if it had taken the lock first.
	if _, err := holder.Exec(ctx, "INSERT INTO fleet_leases VALUES ('b', 'claude', 700, now(), now() + interval '1 minute')"); err != nil {
		t.Fatal(err)
	}
	if _, err := holder.Exec(ctx, "SELECT pg_advisory_unlock($1, hashtext('claude'))", fleet.LeaseLockSpace); err != nil {
		t.Fatal(err)
	}
	if l := <-done; l.Granted != 300 {
		t.Errorf("granted %d after b's 700 were leased while it waited; want 300", l.Granted)
	}
}

// TestReadLeases: each lease with what it still reserves (its ceiling
// less what its host shipped) and whether it expired.
func TestReadLeases(t *testing.T) {
	db, _ := open(t)
	set := limits(t, "10000")
	lease(t, db, "a", set, 0, 600)
	shipped(t, db, "a", 250, time.Now())
	if _, err := db.Lease(ctxT(t), fleet.LeaseAsk{Host: "b", Provider: "claude", Want: 100, TTL: time.Millisecond, Limits: set, Loc: time.UTC}); err != nil {
		t.Fatal(err)
	}
	rows, err := db.ReadLeases(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].Host != "a" || rows[0].Reserved != 350 || rows[0].Expired || rows[1].Host != "b" || rows[1].Reserved != 100 || !rows[1].Expired {
		t.Errorf("leases %+v, want a reserving 350, live; b reserving 100, expired", rows)
	}
}

// TestKnownFrom: the view's hosts summed per window of the fleet budget,
// and the host's own lifetime shipped usage.
func TestKnownFrom(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	v := fleet.View{Refreshed: now, Hosts: []fleet.HostView{
		{Host: "a", Lifetime: map[string]int64{"claude": 900}, Window: map[string]map[budget.Window]int64{"claude": {budget.DayWindow: 40}}},
		{Host: "b", Lifetime: map[string]int64{"claude": 100, "codex": 5}, Window: map[string]map[budget.Window]int64{"claude": {budget.DayWindow: 60}}},
	}}
	f := &budget.Fleet{Budget: budget.Limits{"claude": limits(t, "5000+1000/day")}}
	k := fleet.KnownFrom(v, "a", f)["claude"]
	want := budget.FleetKnown{OwnShipped: 900, Windows: []budget.FleetWindowUse{
		{Window: budget.LifeWindow, Used: 1000}, {Window: budget.DayWindow, Used: 100, ResetsAt: time.Date(2026, 12, 8, 0, 0, 0, 0, time.UTC)}}}
	if k.OwnShipped != want.OwnShipped || len(k.Windows) != 2 || k.Windows[0] != want.Windows[0] || k.Windows[1].Used != 100 || !k.Windows[1].ResetsAt.Equal(want.Windows[1].ResetsAt) {
		t.Errorf("known %+v, want %+v", k, want)
	}
}
