package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bot-bottle/bottlecap/client"
	"github.com/bot-bottle/bottlecap/internal/pglab"
	"github.com/bot-bottle/bottlecap/simhost"
)

func init() { register("fleet", benchFleet) }

const (
	fleetRatioRuns = 5 // rounds of single reports each with shipping off and on
	// The lag is measured at a steady pace rather than flat out: 8
	// clients each sending a report every 5 ms, about 1,600 reports/s.
	fleetLagClients   = 8
	fleetLagPerClient = 300
	fleetLagPace      = 5 * time.Millisecond
	// fleetPoll is how often the watcher looks for shipped reports: the
	// lag it measures is up to this much late.
	fleetPoll = time.Millisecond
)

// benchFleet starts a private Postgres and two daemons, one alone and one
// shipping to it (SPEC section 14), and measures how long an acknowledged
// report takes to reach Postgres (fleet_ship_lag_p99_ms) and what
// shipping costs local ingest: single reports per second with shipping
// on ÷ off, rounds alternated in one run (fleet_local_ingest_ratio).
func benchFleet(ctx context.Context, r *runner) error {
	dsn, stop, err := privateFleetDB(ctx)
	if err != nil {
		return err
	}
	defer stop()
	member, err := startProcDaemon(ctx, r, fmt.Sprintf("fleet:\n  postgres: %s\n  host: bench\n", dsn))
	if err != nil {
		return err
	}
	defer member.stop()
	alone, err := startProcDaemon(ctx, r, "")
	if err != nil {
		return err
	}
	defer alone.stop()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())

	lags, err := shipLags(ctx, conn, member.sock)
	if err != nil {
		return fmt.Errorf("ship lag: %w", err)
	}
	r.report("fleet_ship_lag_p50_ms", round3(ms(percentile(lags, 50))), "ms")
	r.report("fleet_ship_lag_p99_ms", round3(ms(percentile(lags, 99))), "ms")
	return ingestRatio(ctx, r, conn, alone.sock, member.sock, len(lags))
}

// privateFleetDB starts a Postgres of the bench's own with one empty
// database, so that no figure depends on what another run left behind;
// stop ends the server and its data with it.
func privateFleetDB(ctx context.Context) (dsn string, stop func(), err error) {
	pg, err := pglab.Start()
	if err != nil {
		return "", nil, err
	}
	name, err := pg.CreateDatabase(ctx)
	if err != nil {
		pg.Stop()
		return "", nil, err
	}
	return pg.DSN(name), func() { pg.Stop() }, nil
}

// ingestRatio alternates rounds of single reports to the daemon alone and
// the one shipping, which goes first in every other round (the machine's
// load drifts), waiting after each shipping round until Postgres has it
// all, so no round pays for another's shipping.
func ingestRatio(ctx context.Context, r *runner, conn *pgx.Conn, aloneSock, memberSock string, shipped int) error {
	var off, on []float64
	for i := range fleetRatioRuns {
		for k := range 2 {
			if (i+k)%2 == 0 {
				rate, err := ingestOverSocket(ctx, aloneSock, fmt.Sprintf("off%d", i), singlesPerClient, 1)
				if err != nil {
					return fmt.Errorf("shipping off: %w", err)
				}
				off = append(off, rate)
				continue
			}
			rate, err := ingestOverSocket(ctx, memberSock, fmt.Sprintf("on%d", i), singlesPerClient, 1)
			if err != nil {
				return fmt.Errorf("shipping on: %w", err)
			}
			on = append(on, rate)
			shipped += socketClients * singlesPerClient
			if err := waitShipped(ctx, conn, shipped); err != nil {
				return err
			}
		}
	}
	slices.Sort(off)
	slices.Sort(on)
	r.logf("fleet: single reports/s alone %.0f, shipping %.0f", off, on)
	r.report("fleet_local_ingest_reports_per_s", round(on[len(on)/2]), "reports/s")
	r.report("fleet_local_ingest_ratio", round3(on[len(on)/2]/off[len(off)/2]), "ratio")
	return nil
}

// waitShipped waits until Postgres holds n reports of the bench host.
func waitShipped(ctx context.Context, conn *pgx.Conn, n int) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var got int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM fleet_reports WHERE host = 'bench'`).Scan(&got); err != nil {
			return err
		}
		if got >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d reports shipped after 2 minutes", got, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// shipLags sends paced single reports and returns, sorted, how long after
// its acknowledgement each one was seen in Postgres.
func shipLags(ctx context.Context, conn *pgx.Conn, sock string) ([]time.Duration, error) {
	var acked sync.Map // id -> time.Time
	seen := map[string]time.Time{}
	done := make(chan error, 1)
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() { done <- watchShipped(wctx, conn, seen, fleetLagClients*fleetLagPerClient) }()
	if err := pacedReports(ctx, sock, &acked); err != nil {
		return nil, err
	}
	if err := <-done; err != nil {
		return nil, err
	}
	var lags []time.Duration
	for id, at := range seen {
		t, ok := acked.Load(id)
		if !ok {
			return nil, fmt.Errorf("report %s shipped but never acknowledged", id)
		}
		lags = append(lags, max(0, at.Sub(t.(time.Time))))
	}
	slices.Sort(lags)
	return lags, nil
}

// pacedReports has fleetLagClients clients each send fleetLagPerClient
// single reports, one every fleetLagPace, noting when each was
// acknowledged.
func pacedReports(ctx context.Context, sock string, acked *sync.Map) error {
	var wg sync.WaitGroup
	errs := make(chan error, fleetLagClients)
	for i := range fleetLagClients {
		wg.Go(func() {
			c := client.New(sock)
			defer c.Close()
			tick := time.NewTicker(fleetLagPace)
			defer tick.Stop()
			for n := range fleetLagPerClient {
				rep := simhost.WireReports(fmt.Sprintf("lag-%d-%04d", i, n), 1, func(int) string { return fmt.Sprintf("lag-%d", i) })
				if _, err := c.Ingest(ctx, rep); err != nil {
					errs <- err
					return
				}
				acked.Store(rep[0].ID, time.Now())
				<-tick.C
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// watchShipped polls Postgres for the bench host's newly shipped reports,
// noting when each was first seen, until it has seen n.
func watchShipped(ctx context.Context, conn *pgx.Conn, seen map[string]time.Time, n int) error {
	var after int64
	deadline := time.Now().Add(5 * time.Minute)
	for len(seen) < n {
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d reports reached Postgres", len(seen), n)
		}
		rows, err := conn.Query(ctx, `SELECT id, seq FROM fleet_reports WHERE host = 'bench' AND seq > $1`, after)
		if err != nil {
			return err
		}
		now := time.Now()
		var id string
		var seq int64
		_, err = pgx.ForEachRow(rows, []any{&id, &seq}, func() error {
			seen[id] = now
			after = max(after, seq)
			return nil
		})
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
		time.Sleep(fleetPoll)
	}
	return nil
}
