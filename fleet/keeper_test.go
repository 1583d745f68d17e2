package fleet_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/fleet"
	"github.com/bot-bottle/bottlecap/internal/pgtest"
	"github.com/bot-bottle/bottlecap/internal/tcpproxy"
	"github.com/bot-bottle/bottlecap/internal/testutil"
)

// holder is the core as the keeper sees it, in memory: the host's usage
// and holds, the lease the keeper set, and what Postgres was said to be.
type holder struct {
	mu        sync.Mutex
	used      int64
	held      int64
	ceiling   int64
	deadline  time.Time
	reachable bool
	closed    int
	known     budget.FleetKnown
}

func (h *holder) FleetSpent(string) (int64, int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.used, h.held
}

func (h *holder) CloseFleetLease(string) int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.deadline, h.ceiling = time.Time{}, 0
	h.closed++
	return h.used + h.held
}

func (h *holder) SetFleetLease(_ string, ceiling int64, deadline time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ceiling, h.deadline = ceiling, deadline
}

func (h *holder) SetFleetKnown(_ context.Context, k map[string]budget.FleetKnown) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.known = k["claude"]
}

func (h *holder) SetFleetReachable(_ context.Context, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reachable = ok
}

func (h *holder) spend(n int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.used += n
}

func (h *holder) lease() (ceiling int64, deadline time.Time, reachable bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ceiling, h.deadline, h.reachable
}

// keeperRig runs a keeper for host "a" over db at dsn, its TTL and idle
// time short.
func startKeeper(t *testing.T, dsn string, h *holder, limit string, lease int64) *fleet.Keeper {
	t.Helper()
	db, err := fleet.Open(ctxT(t), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	f := &budget.Fleet{Host: "a", Budget: budget.Limits{"claude": limits(t, limit)}, Lease: lease}
	k := fleet.NewKeeper(fleet.KeeperConfig{Host: "a", Fleet: func() *budget.Fleet { return f }, Holder: h,
		Leaser: func(context.Context) (fleet.Leaser, error) { return db, nil },
		TTL:    3 * time.Second, Tick: 20 * time.Millisecond, Idle: 300 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { k.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return k
}

// row is the host's lease as Postgres holds it.
func row(t *testing.T, db *fleet.DB, host string) (ceiling int64, expires time.Time) {
	t.Helper()
	err := db.Pool().QueryRow(ctxT(t), "SELECT ceiling, expires_at FROM fleet_leases WHERE host = $1 AND provider = 'claude'", host).Scan(&ceiling, &expires)
	if err != nil {
		return -1, time.Time{}
	}
	return ceiling, expires
}

// TestKeeperTakesRenewsAndReturns: a want brings a lease; the host's
// spending renews it, its room topped up; once idle the host returns
// what is left, down to what it spent.
func TestKeeperTakesRenewsAndReturns(t *testing.T) {
	db, dsn := open(t)
	h := &holder{used: 100}
	k := startKeeper(t, dsn, h, "1M", 1000)
	k.Want("claude", 5000)
	testutil.Eventually(t, "a lease covering the want", func() bool {
		c, _, ok := h.lease()
		return ok && c >= 100+5000
	})
	first, firstExpiry := row(t, db, "a")
	if c, deadline, _ := h.lease(); c != first || !deadline.Before(firstExpiry) {
		t.Errorf("host holds ceiling %d until %s; Postgres %d until %s: want the same ceiling, the local deadline first", c, deadline, first, firstExpiry)
	}
	// Spending past half the room brings more; spending on renews.
	testutil.Eventually(t, "a renewal while the host spends", func() bool {
		h.spend(200)
		_, exp := row(t, db, "a")
		return exp.After(firstExpiry)
	})
	if c, _ := row(t, db, "a"); c < first {
		t.Errorf("a renewal lowered the ceiling from %d to %d", first, c)
	}
	testutil.Eventually(t, "the lease returned once the host is idle", func() bool {
		c, _ := row(t, db, "a")
		used, _ := h.FleetSpent("claude")
		return c == used
	})
	if c, deadline, _ := h.lease(); c != 0 || !deadline.IsZero() || h.closed == 0 {
		t.Errorf("after the return the host holds ceiling %d until %s (closed %d times); want no lease", c, deadline, h.closed)
	}
}

// TestKeeperCutOff: with Postgres cut off, the keeper's renewals fail,
// the host is told Postgres is unreachable, and its lease's local
// deadline — before Postgres's expiry — is not moved; healed, the next
// want brings a lease again.
func TestKeeperCutOff(t *testing.T) {
	srv := pgtest.Shared(t)
	dsn := pgtest.Database(t)
	proxy, err := tcpproxy.Start(srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	db, err := fleet.Open(ctxT(t), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	h := &holder{}
	k := startKeeper(t, pgtest.Via(dsn, proxy.Addr()), h, "1M", 1000)
	k.Want("claude", 10)
	testutil.Eventually(t, "a first lease", func() bool { c, _, _ := h.lease(); return c > 0 })
	_, deadline, _ := h.lease()
	_, expires := row(t, db, "a")
	proxy.Cut()
	testutil.Eventually(t, "the host told Postgres is unreachable", func() bool {
		h.spend(1)
		k.Want("claude", 10)
		_, _, ok := h.lease()
		return !ok
	})
	if _, d, _ := h.lease(); !d.Equal(deadline) || !d.Before(expires) {
		t.Errorf("while cut off the local deadline is %s (was %s), Postgres's expiry %s: want it unmoved, and first", d, deadline, expires)
	}
	proxy.Heal()
	testutil.Eventually(t, "a lease again once healed", func() bool {
		k.Want("claude", 10)
		_, d, ok := h.lease()
		return ok && d.After(deadline)
	})
}

// TestLeaseSize: fleet.lease when set, else a fiftieth of the smallest
// limit within bounds.
func TestLeaseSize(t *testing.T) {
	for _, tt := range []struct {
		limit string
		lease int64
		want  int64
	}{
		{"20M/month", 0, 400_000},
		{"10G/month", 0, 2_000_000},
		{"100k", 0, 4096},
		{"5M/day+200M/month", 0, 100_000},
		{"20M/month", 50_000, 50_000},
	} {
		f := &budget.Fleet{Budget: budget.Limits{"claude": limits(t, tt.limit)}, Lease: tt.lease}
		if got := fleet.LeaseSize(f, "claude"); got != tt.want {
			t.Errorf("%s (lease %d): %d, want %d", tt.limit, tt.lease, got, tt.want)
		}
	}
}
