package fleet

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bot-bottle/bottlecap/budget"
)

// Leases of the fleet budget: the "ceiling" model. A lease says "this
// host's lifetime usage of provider P may reach ceiling". At a grant the
// host sends its base — its local lifetime usage, shipped or not, plus
// what its allowances hold — and asks for want tokens past it. What a
// host's lease reserves of the fleet is its ceiling less what it has
// shipped: its unshipped usage and what it may still spend. For every
// window W of the fleet limit,
//
//	committed(W) = every host's shipped usage in W
//	             + what every other host's lease reserves
//	             + the asking host's new ceiling less what it shipped
//
// and the grant is the most, up to want, that keeps committed(W) within
// the limit of every window. Usage a host shipped beyond its ceiling (what
// its admissions overran) counts in full as shipped. Grants of a provider
// are serialised by an advisory lock; shipping, which only moves a host's
// tokens from reserved to shipped, needs no lock. A renewal is a grant
// again (the ceiling is set anew from the host's base: it may fall when
// the fleet grew tight), a return is a grant of nothing (the ceiling
// falls to the base). An expired lease is never deleted: it reserves its
// rest until its host renews or returns it.

// leaseLockSpace is the first key of the per-provider advisory lock
// ("leas"), the second being the provider's hash.
const leaseLockSpace int32 = 0x6c656173

// LeaseAsk is a grant, renewal or return of one provider's lease.
type LeaseAsk struct {
	Host, Provider string
	// Base is the host's local lifetime usage of the provider, shipped
	// or not, plus what its allowances hold: the ceiling stands on it.
	Base int64
	// Want is what the host asks past its base; 0 returns the lease.
	Want int64
	// TTL is how long the lease lives in Postgres without a renewal.
	TTL time.Duration
	// Limits are the fleet's limits of the provider; Loc is the fleet's
	// timezone, where its calendar windows start.
	Limits budget.LimitSet
	Loc    *time.Location
}

// Lease is what a grant, renewal or return decided.
type Lease struct {
	// Ceiling is what the host's lifetime usage may reach; Granted what
	// it may spend past its base (ceiling less base).
	Ceiling, Granted int64
	// ExpiresAt is when Postgres holds the lease expired (its clock).
	ExpiresAt time.Time
	// Known is the fleet's usage as the grant read it.
	Known budget.FleetKnown
}

// Lease grants, renews or returns a lease in one transaction.
func (db *DB) Lease(ctx context.Context, ask LeaseAsk) (Lease, error) {
	if ask.Host == "" || ask.Provider == "" || len(ask.Limits) == 0 || ask.Base < 0 || ask.Want < 0 || ask.TTL <= 0 {
		return Lease{}, fmt.Errorf("fleet: lease of %q for host %q: incomplete ask", ask.Provider, ask.Host)
	}
	var out Lease
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, hashtext($2))", leaseLockSpace, ask.Provider); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		// One statement, so one snapshot, taken after the lock: every
		// grant before this one is seen, and no shipment is seen half.
		st, err := readFleet(ctx, tx, ask.Host, ask.Provider, ask.Limits, ask.Loc, time.Now())
		if err != nil {
			return err
		}
		base := max(ask.Base, st.ownShipped) // a ledger that holds less than it shipped (rebuilt) stands on what Postgres has
		out.Granted = max(min(ask.Want, st.room(base)), 0)
		out.Ceiling = base + out.Granted
		out.Known = st.known()
		return tx.QueryRow(ctx, `INSERT INTO fleet_leases (host, provider, ceiling, granted_at, expires_at)
			VALUES ($1, $2, $3, now(), now() + $4::bigint * interval '1 microsecond')
			ON CONFLICT (host, provider) DO UPDATE SET ceiling = EXCLUDED.ceiling, granted_at = EXCLUDED.granted_at, expires_at = EXCLUDED.expires_at
			RETURNING expires_at`, ask.Host, ask.Provider, out.Ceiling, ask.TTL.Microseconds()).Scan(&out.ExpiresAt)
	})
	if err != nil {
		return Lease{}, fmt.Errorf("fleet: lease of %s for host %s: %w", ask.Provider, ask.Host, err)
	}
	return out, nil
}

// fleetRead is one snapshot of a provider's fleet usage, as a host sees
// it.
type fleetRead struct {
	ownShipped        int64
	othersOutstanding int64
	limits            budget.LimitSet
	shipped           []int64 // per limit: every host's shipped usage in its window
	resets            []time.Time
}

// querier is what a read needs of a pool or a transaction.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// readFleetSQL reads, in one statement, the host's lifetime shipped usage
// ($6, provider $7), what the other hosts' leases reserve, every host's
// lifetime usage, and every host's usage in each of the $8 windows, summed
// from the usage buckets (pieces $1 to $5; a window without pieces reads 0).
var readFleetSQL = `WITH ` + windowPartsSQL + `, sums AS (
	SELECT i, ` + saturatedSum + ` AS n FROM parts GROUP BY i
)
SELECT
	COALESCE((SELECT shipped FROM fleet_host_usage WHERE host = $6 AND provider = $7), 0),
	COALESCE((SELECT SUM(GREATEST(l.ceiling - COALESCE(u.shipped, 0), 0)) FROM fleet_leases l
		LEFT JOIN fleet_host_usage u ON u.host = l.host AND u.provider = l.provider
		WHERE l.provider = $7 AND l.host <> $6), 0)::bigint,
	COALESCE((SELECT SUM(shipped) FROM fleet_host_usage WHERE provider = $7), 0)::bigint,
	ARRAY(SELECT COALESCE(s.n, 0) FROM generate_series(1, $8::bigint) AS w(i) LEFT JOIN sums s ON s.i = w.i ORDER BY w.i)`

// readFleet reads a provider's fleet usage for host in one statement.
func readFleet(ctx context.Context, q querier, host, provider string, limits budget.LimitSet, loc *time.Location, now time.Time) (fleetRead, error) {
	st := fleetRead{limits: limits, resets: make([]time.Time, len(limits))}
	spans := make([]span, len(limits))
	for i, l := range limits {
		spans[i], st.resets[i] = windowSpan(provider, l.Window, loc, now)
	}
	args := append(splitSpans(spans).args(), host, provider, len(limits))
	var life int64
	if err := q.QueryRow(ctx, readFleetSQL, args...).Scan(&st.ownShipped, &st.othersOutstanding, &life, &st.shipped); err != nil {
		return fleetRead{}, err
	}
	if len(st.shipped) != len(limits) {
		return fleetRead{}, errors.New("read fleet usage: one sum per window expected")
	}
	for i, l := range limits {
		if l.Window == budget.LifeWindow {
			st.shipped[i] = life
		}
	}
	return st, nil
}

// windowSpan is the report times of a window's current period at now
// (a calendar period's start to its end, a rolling window's oldest counted
// bucket on), and when a calendar period ends. A lifetime window reads an
// empty span: its usage is the hosts' shipped totals.
func windowSpan(provider string, w budget.Window, loc *time.Location, now time.Time) (span, time.Time) {
	switch {
	case w == budget.LifeWindow:
		return span{provider: provider, first: 0, last: -1}, time.Time{}
	case w.Calendar():
		start, end := w.Bounds(now, loc)
		return span{provider: provider, first: start.UnixNano(), last: end.UnixNano() - 1}, end
	}
	// Open ended; ts MaxInt64 left out, as the lease read it before the
	// buckets.
	return span{provider: provider, first: w.Since(now, loc).UnixNano(), last: math.MaxInt64 - 1}, time.Time{}
}

// room is what the fleet can still lease to a host standing on base: the
// least, over the windows, of the limit less the shipped usage, the
// other hosts' reservations and the host's own unshipped base.
func (st fleetRead) room(base int64) int64 {
	room := int64(math.MaxInt64)
	for i, l := range st.limits {
		committed := budget.SatAdd(budget.SatAdd(st.shipped[i], st.othersOutstanding), base-st.ownShipped)
		room = min(room, l.Tokens-committed)
	}
	return room
}

// known is the read as the book takes it.
func (st fleetRead) known() budget.FleetKnown {
	k := budget.FleetKnown{OwnShipped: st.ownShipped, Windows: make([]budget.FleetWindowUse, len(st.limits))}
	for i, l := range st.limits {
		k.Windows[i] = budget.FleetWindowUse{Window: l.Window, Used: st.shipped[i], ResetsAt: st.resets[i]}
	}
	return k
}

// LeaseRow is one host's lease of a provider as Postgres holds it.
type LeaseRow struct {
	Host, Provider string
	Ceiling        int64
	// Reserved is what the lease still reserves of the fleet: its
	// ceiling less what its host has shipped, at least 0.
	Reserved  int64
	ExpiresAt time.Time
	Expired   bool
}

// ReadLeases reads every lease, with what each still reserves.
func (db *DB) ReadLeases(ctx context.Context) ([]LeaseRow, error) {
	rows, err := db.pool.Query(ctx, `SELECT l.host, l.provider, l.ceiling, GREATEST(l.ceiling - COALESCE(u.shipped, 0), 0), l.expires_at, l.expires_at <= now()
		FROM fleet_leases l LEFT JOIN fleet_host_usage u ON u.host = l.host AND u.provider = l.provider
		ORDER BY l.host, l.provider`)
	if err != nil {
		return nil, fmt.Errorf("fleet: read leases: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (LeaseRow, error) {
		var l LeaseRow
		err := r.Scan(&l.Host, &l.Provider, &l.Ceiling, &l.Reserved, &l.ExpiresAt, &l.Expired)
		return l, err
	})
	if err != nil {
		return nil, fmt.Errorf("fleet: read leases: %w", err)
	}
	return out, nil
}
