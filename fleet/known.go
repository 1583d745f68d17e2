package fleet

import (
	"context"
	"fmt"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/jackc/pgx/v5"
)

// KnownFrom is what a view of the fleet tells a host's book of each
// provider the fleet budget limits: every host's shipped usage in each
// window (lifetime: their shipped totals), and the host's own lifetime
// shipped usage, both from the view's one snapshot.
func KnownFrom(v View, host string, f *budget.Fleet) map[string]budget.FleetKnown {
	out := make(map[string]budget.FleetKnown, len(f.Budget))
	for p, set := range f.Budget {
		k := budget.FleetKnown{Windows: make([]budget.FleetWindowUse, len(set))}
		for i, l := range set {
			k.Windows[i].Window = l.Window
			if l.Window.Calendar() {
				_, k.Windows[i].ResetsAt = l.Window.Bounds(v.Refreshed, f.Location())
			}
		}
		for _, h := range v.Hosts {
			if h.Host == host {
				k.OwnShipped = h.Lifetime[p]
			}
			for i, l := range set {
				n := h.Lifetime[p]
				if l.Window != budget.LifeWindow {
					n = h.Window[p][l.Window]
				}
				k.Windows[i].Used = budget.SatAdd(k.Windows[i].Used, n)
			}
		}
		out[p] = k
	}
	return out
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

// Settings are the member's fleet settings in force (reloads included):
// the keeper reads its budget, timezone and lease size from them.
func (m *Member) Settings() *budget.Fleet { return m.fleet.Load() }

// Leaser is the member's database with its host claimed, connecting
// first if need be: the keeper's leases go where its reports go.
func (m *Member) Leaser(ctx context.Context) (Leaser, error) { return m.session(ctx) }

// ReadLeases reads every lease through the member's database.
func (m *Member) ReadLeases(ctx context.Context) ([]LeaseRow, error) {
	db, err := m.session(ctx)
	if err != nil {
		return nil, err
	}
	return db.ReadLeases(ctx)
}
