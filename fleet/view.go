package fleet

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bot-bottle/bottlecap/budget"
)

// View is the fleet as one daemon last read it from Postgres: every host
// that ever claimed a name, with what it shipped. The daemon refreshes it
// at least every 2 s while it reaches Postgres (SPEC section 14).
type View struct {
	// Refreshed is when it was read, on this daemon's clock; zero when it
	// never was.
	Refreshed time.Time
	// Hosts are by name, this daemon's own among them.
	Hosts []HostView
}

// HostView is one host of the fleet as Postgres knows it.
type HostView struct {
	Host     string
	Instance string
	// LastSeen is its last heartbeat or shipment, on Postgres' clock;
	// SeenAgo how long before the refresh that was, measured on Postgres'
	// clock too, so the hosts' clocks need not agree.
	LastSeen time.Time
	SeenAgo  time.Duration
	// ShippedSeq is the last seq of its ledger it shipped; Lag the age of
	// its oldest unshipped report when it last said (0: caught up).
	ShippedSeq int64
	Lag        time.Duration
	// Lifetime is its shipped counted tokens per provider, ever.
	Lifetime map[string]int64
	// Window is its shipped counted tokens per provider in the current
	// period of each of the fleet budget's windows (see WindowSince).
	Window map[string]map[budget.Window]int64
}

// Live reports whether the host showed a sign of life within HostTTL.
func (h HostView) Live() bool { return h.SeenAgo <= HostTTL }

// Host is the named host's view, if the fleet has it.
func (v View) Host(name string) (HostView, bool) {
	i, ok := slices.BinarySearchFunc(v.Hosts, name, func(h HostView, n string) int {
		switch {
		case h.Host < n:
			return -1
		case h.Host > n:
			return 1
		}
		return 0
	})
	if !ok {
		return HostView{}, false
	}
	return v.Hosts[i], true
}

// windowQuery is one (provider, window) of the fleet budget to sum.
type windowQuery struct {
	provider string
	window   budget.Window
	since    time.Time
}

// windowQueries are the fleet budget's windows with a start (Life is the
// lifetime usage, which needs no sum), their periods taken at now in loc.
func windowQueries(limits budget.Limits, loc *time.Location, now time.Time) []windowQuery {
	var qs []windowQuery
	for _, p := range slices.Sorted(maps.Keys(limits)) {
		for _, l := range limits[p] {
			if l.Window != budget.LifeWindow {
				qs = append(qs, windowQuery{p, l.Window, l.Window.Since(now, loc)})
			}
		}
	}
	return qs
}

// ReadView reads every host with its lifetime usage and its usage in the
// current period of each window of limits (the fleet budget), periods
// taken at now in loc.
func (db *DB) ReadView(ctx context.Context, limits budget.Limits, loc *time.Location, now time.Time) (View, error) {
	v := View{Refreshed: now}
	err := pgx.BeginTxFunc(ctx, db.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		byName, err := readHosts(ctx, tx)
		if err != nil {
			return err
		}
		if err := readLifetimes(ctx, tx, byName); err != nil {
			return err
		}
		if err := readWindows(ctx, tx, byName, windowQueries(limits, loc, now)); err != nil {
			return err
		}
		for _, name := range slices.Sorted(maps.Keys(byName)) {
			v.Hosts = append(v.Hosts, *byName[name])
		}
		return nil
	})
	if err != nil {
		return View{}, fmt.Errorf("read the fleet: %w", err)
	}
	return v, nil
}

func readHosts(ctx context.Context, tx pgx.Tx) (map[string]*HostView, error) {
	rows, err := tx.Query(ctx, `SELECT host, instance, last_seen, extract(epoch FROM now() - last_seen)::float8, shipped_seq, lag_ms
		FROM fleet_hosts`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	byName := map[string]*HostView{}
	for rows.Next() {
		h := &HostView{Lifetime: map[string]int64{}, Window: map[string]map[budget.Window]int64{}}
		var agoSecs float64
		var lagMS int64
		if err := rows.Scan(&h.Host, &h.Instance, &h.LastSeen, &agoSecs, &h.ShippedSeq, &lagMS); err != nil {
			return nil, err
		}
		h.SeenAgo = max(0, time.Duration(agoSecs*float64(time.Second)))
		h.Lag = time.Duration(lagMS) * time.Millisecond
		byName[h.Host] = h
	}
	return byName, rows.Err()
}

func readLifetimes(ctx context.Context, tx pgx.Tx, byName map[string]*HostView) error {
	rows, err := tx.Query(ctx, `SELECT host, provider, shipped FROM fleet_host_usage`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var host, provider string
		var n int64
		if err := rows.Scan(&host, &provider, &n); err != nil {
			return err
		}
		if h, ok := byName[host]; ok {
			h.Lifetime[provider] = n
		}
	}
	return rows.Err()
}

// readWindows sums every window in one statement, from the usage buckets
// (usage.go): each window counts the reports from its start on. A host
// with nothing in a window still gets its 0, so "no usage" and "not read"
// differ.
func readWindows(ctx context.Context, tx pgx.Tx, byName map[string]*HostView, qs []windowQuery) error {
	if len(qs) == 0 {
		return nil
	}
	spans := make([]span, len(qs))
	for i, q := range qs {
		spans[i] = span{provider: q.provider, first: unixNanos(q.since), last: math.MaxInt64}
	}
	for _, h := range byName {
		for _, q := range qs {
			setWindow(h, q, 0)
		}
	}
	rows, err := tx.Query(ctx, "WITH "+windowPartsSQL+" SELECT i, host, "+saturatedSum+" FROM parts GROUP BY i, host",
		splitSpans(spans).args()...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var i int64
		var host string
		var n int64
		if err := rows.Scan(&i, &host, &n); err != nil {
			return err
		}
		if h, ok := byName[host]; ok && i >= 1 && int(i) <= len(qs) {
			setWindow(h, qs[i-1], n)
		}
	}
	return rows.Err()
}

func setWindow(h *HostView, q windowQuery, n int64) {
	w := h.Window[q.provider]
	if w == nil {
		w = map[budget.Window]int64{}
		h.Window[q.provider] = w
	}
	w[q.window] = n
}
