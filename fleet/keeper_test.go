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
	sets      int
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
	h.sets++
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

// steppedKeeper is a keeper for host over db that only a test's Round
// calls move; it never goes idle, and pauses yield after yielding.
func steppedKeeper(t *testing.T, db *fleet.DB, host string, h *holder, limit string, lease int64, yield time.Duration) *fleet.Keeper {
	t.Helper()
	f := &budget.Fleet{Host: host, Budget: budget.Limits{"claude": limits(t, limit)}, Lease: lease}
	return fleet.NewKeeper(fleet.KeeperConfig{Host: host, Fleet: func() *budget.Fleet { return f }, Holder: h,
		Leaser: func(context.Context) (fleet.Leaser, error) { return db, nil },
		TTL:    time.Minute, Idle: time.Hour, Yield: yield})
}

// room is what the lease the keeper set leaves the host.
func (h *holder) room() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.deadline.IsZero() || !time.Now().Before(h.deadline) {
		return 0
	}
	return h.ceiling - h.used - h.held
}

// TestKeepersPoolWhatNoneCanUse: three busy hosts share a fleet budget
// whose last 9,000 tokens are split among their leases, 3,000 each, and
// each wants 8,000. A host whose lease the fleet cannot top up returns
// it at once, down to what it spent and holds; the next host to ask is
// granted what was returned: within one round each, one host can spend
// 8,000, and the leases never reserve more than the limit.
func TestKeepersPoolWhatNoneCanUse(t *testing.T) {
	db, _ := open(t)
	hosts := []string{"a", "b", "c"}
	holders := make([]*holder, len(hosts))
	keepers := make([]*fleet.Keeper, len(hosts))
	for i, host := range hosts {
		holders[i] = &holder{}
		keepers[i] = steppedKeeper(t, db, host, holders[i], "30000", 10_000, time.Hour)
		keepers[i].Want("claude", 1)
		keepers[i].Round(ctxT(t))
		if c, _ := row(t, db, host); c != 10_000 {
			t.Fatalf("host %s took ceiling %d; want 10000", host, c)
		}
	}
	for _, h := range holders {
		h.mu.Lock()
		h.used, h.held = 6_000, 1_000
		h.mu.Unlock()
	}
	overcommitted := func() {
		t.Helper()
		if sum := scalar[int64](t, db, "SELECT SUM(ceiling)::bigint FROM fleet_leases"); sum > 30_000 {
			t.Fatalf("the leases reserve %d of a 30000 limit", sum)
		}
	}
	granted := -1
	for step := 0; step < 2*len(hosts) && granted < 0; step++ {
		i := step % len(hosts)
		keepers[i].Want("claude", 8_000)
		keepers[i].Round(ctxT(t))
		overcommitted()
		if holders[i].room() >= 8_000 {
			granted = i
		}
	}
	if granted < 0 {
		for i, host := range hosts {
			c, _ := row(t, db, host)
			t.Logf("host %s: ceiling %d in Postgres, room %d", host, c, holders[i].room())
		}
		t.Fatal("no host was granted 8000 though the leases left 9000 among them")
	}
	for i, host := range hosts {
		if i == granted {
			continue
		}
		if c, _ := row(t, db, host); c > 10_000 || holders[i].room() >= 8_000 {
			t.Errorf("host %s: ceiling %d, room %d beside the host granted", host, c, holders[i].room())
		}
	}
	// A host that yielded takes nothing back while it pauses: its lease in
	// Postgres stays as it returned it, and the asks waiting are answered.
	yielded := (granted + len(hosts) - 1) % len(hosts)
	c, exp := row(t, db, hosts[yielded])
	if c != 7_000 {
		t.Fatalf("host %s returned its lease down to %d; want what it spent and holds, 7000", hosts[yielded], c)
	}
	sets := holders[yielded].sets
	for range 3 {
		keepers[yielded].Want("claude", 8_000)
		keepers[yielded].Round(ctxT(t))
	}
	if c2, exp2 := row(t, db, hosts[yielded]); c2 != c || !exp2.Equal(exp) {
		t.Errorf("host %s, pausing after its yield, changed its lease in Postgres: ceiling %d until %s, was %d until %s", hosts[yielded], c2, exp2, c, exp)
	}
	if n := holders[yielded].sets - sets; n != 3 {
		t.Errorf("host %s answered %d of 3 wants while pausing; want all", hosts[yielded], n)
	}
}
