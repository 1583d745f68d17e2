package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/fleet"
)

func init() { register("fleet_view", benchFleetView) }

const (
	fleetViewReports = 1_000_000 // shipped over one calendar month
	fleetViewHosts   = 4
	fleetViewBatch   = 5_000 // reports per shipment
	fleetViewRounds  = 15    // reads of each kind, alternated
	fleetViewBudget  = "1000G/day+1000G/month"
)

// benchFleetView ships a month of reports from four hosts to a private
// Postgres and times what every daemon does every second: reading the
// fleet's view with its usage in each window of a [1000G/day,
// 1000G/month] budget, at the month's last minute (the longest month
// window). fleet_view_read_ms reads it as the daemon does, from the usage
// buckets; fleet_view_read_raw_ms the same view summing the reports, as
// it did before the buckets (migration 0003); both in the same run, rounds
// alternated, medians. fleet_view_read_speedup is raw ÷ buckets.
func benchFleetView(ctx context.Context, r *runner) error {
	dsn, stop, err := privateFleetDB(ctx)
	if err != nil {
		return err
	}
	defer stop()
	db, err := fleet.Open(ctx, dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	monthStart := time.Date(time.Now().Year(), time.Now().Month()-1, 1, 0, 0, 0, 0, time.UTC)
	monthEnd := monthStart.AddDate(0, 1, 0)
	start := time.Now()
	if err := shipMonth(ctx, db, monthStart, monthEnd); err != nil {
		return fmt.Errorf("ship a month: %w", err)
	}
	// Autovacuum would have caught up in a live fleet; the raw sums get
	// their best case too (index-only scans).
	if _, err := db.Pool().Exec(ctx, "VACUUM ANALYZE"); err != nil {
		return err
	}
	r.logf("fleet_view: %d reports from %d hosts shipped and vacuumed in %s", fleetViewReports, fleetViewHosts, time.Since(start).Round(time.Millisecond))

	set, err := budget.ParseLimitSet(fleetViewBudget)
	if err != nil {
		return err
	}
	buckets, raw, err := timeViewReads(ctx, r, db, budget.Limits{"claude": set}, monthEnd.Add(-time.Minute))
	if err != nil {
		return err
	}
	slices.Sort(buckets)
	slices.Sort(raw)
	b, rw := buckets[len(buckets)/2], raw[len(raw)/2]
	r.report("fleet_view_read_ms", round3(ms(b)), "ms")
	r.report("fleet_view_read_raw_ms", round3(ms(rw)), "ms")
	r.report("fleet_view_read_speedup", round3(float64(rw)/float64(b)), "ratio")
	return nil
}

// timeViewReads reads the view at now fleetViewRounds times each from the
// buckets and from the reports, alternating which goes first (the
// machine's load drifts), and checks that both read the same month.
func timeViewReads(ctx context.Context, r *runner, db *fleet.DB, limits budget.Limits, now time.Time) (buckets, raw []time.Duration, err error) {
	var viewTotal, rawTotal int64
	for i := range fleetViewRounds + 1 { // round 0 warms both up
		for k := range 2 {
			t0 := time.Now()
			if (i+k)%2 == 0 {
				v, err := db.ReadView(ctx, limits, time.UTC, now)
				if err != nil {
					return nil, nil, err
				}
				if i > 0 {
					buckets = append(buckets, time.Since(t0))
				}
				viewTotal = monthUsage(v)
				continue
			}
			n, err := readViewRaw(ctx, db.Pool(), limits, now)
			if err != nil {
				return nil, nil, fmt.Errorf("raw view: %w", err)
			}
			if i > 0 {
				raw = append(raw, time.Since(t0))
			}
			rawTotal = n
		}
	}
	if viewTotal != rawTotal || viewTotal == 0 {
		return nil, nil, fmt.Errorf("the month's usage read %d from the buckets, %d from the reports", viewTotal, rawTotal)
	}
	r.logf("fleet_view: month usage %d tokens; reads from buckets %v, from reports %v", viewTotal, buckets, raw)
	return buckets, raw, nil
}

// shipMonth ships fleetViewReports claude reports, at random times of
// [from, to), round-robin from fleetViewHosts hosts, in batches as the
// shipper sends them.
func shipMonth(ctx context.Context, db *fleet.DB, from, to time.Time) error {
	rng := rand.New(rand.NewPCG(16, 3))
	span := int64(to.Sub(from))
	for h := range fleetViewHosts {
		host := fmt.Sprint("h", h)
		if err := db.Claim(ctx, host, host); err != nil {
			return err
		}
		per := fleetViewReports / fleetViewHosts
		batch := make([]budget.SeqReport, 0, fleetViewBatch)
		for seq := 1; seq <= per; seq++ {
			counted := 1_000 + rng.Int64N(50_000)
			batch = append(batch, budget.SeqReport{Seq: int64(seq), Report: budget.Report{
				ID: fmt.Sprintf("%s-%d", host, seq), Bottle: "b", Agent: "a", Provider: "claude", Host: "api.anthropic.com", Model: "m",
				Usage: budget.Usage{Input: counted}, Complete: true, TS: from.Add(time.Duration(rng.Int64N(span))), Counted: counted,
			}})
			if len(batch) == fleetViewBatch || seq == per {
				if err := db.Ship(ctx, host, host, batch, 0); err != nil {
					return err
				}
				batch = batch[:0]
			}
		}
	}
	return nil
}

// monthUsage is every host's claude usage this month in a view.
func monthUsage(v fleet.View) int64 {
	var n int64
	for _, h := range v.Hosts {
		n += h.Window["claude"][budget.MonthWindow]
	}
	return n
}

// readViewRaw reads the view as fleet.ReadView did before the usage
// buckets, summing every window's reports, and returns the month's usage
// of all hosts.
func readViewRaw(ctx context.Context, pool *pgxpool.Pool, limits budget.Limits, now time.Time) (int64, error) {
	var providers []string
	var since []int64
	var month int64 = -1
	for p, set := range limits {
		for _, l := range set {
			if l.Window == budget.MonthWindow {
				month = int64(len(since) + 1)
			}
			providers, since = append(providers, p), append(since, l.Window.Since(now, time.UTC).UnixNano())
		}
	}
	var total int64
	err := pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		for _, sql := range []string{
			`SELECT host, instance, last_seen, extract(epoch FROM now() - last_seen)::float8, shipped_seq, lag_ms FROM fleet_hosts`,
			`SELECT host, provider, shipped FROM fleet_host_usage`,
		} {
			rows, err := tx.Query(ctx, sql)
			if err != nil {
				return err
			}
			for rows.Next() {
				if _, err := rows.Values(); err != nil {
					return err
				}
			}
			if rows.Close(); rows.Err() != nil {
				return rows.Err()
			}
		}
		rows, err := tx.Query(ctx, fmt.Sprintf(`SELECT w.i, r.host, LEAST(sum(r.counted), %d)::bigint
			FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS w(provider, since, i)
			JOIN fleet_reports r ON r.provider = w.provider AND r.ts >= w.since
			GROUP BY w.i, r.host`, budget.MaxCounted), providers, since)
		if err != nil {
			return err
		}
		var i, n int64
		var host string
		_, err = pgx.ForEachRow(rows, []any{&i, &host, &n}, func() error {
			if i == month {
				total += n
			}
			return nil
		})
		return err
	})
	return total, err
}
