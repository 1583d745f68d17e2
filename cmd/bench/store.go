package main

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/simhost"
	"github.com/bot-bottle/bottlecap/store"
)

func init() { register("store", benchStore) }

const (
	rawRows       = 50_000 // rows of the raw-insert baseline, per round
	rawTxRows     = 1_000  // rows per raw transaction
	ingestReports = 20_000 // reports per group-commit measurement
	submitters    = 64
	bigLedger     = 1_000_000
	bigBatch      = 10_000 // reports per AppendReports while filling the big ledger
	rounds        = 3
)

// benchStore measures the local SQLite limit and the store's group-commit
// ingest on an empty ledger and on one holding a million reports. The three
// are measured in alternation for a few rounds and the best round of each
// is reported: on a shared machine the best round is the one least
// disturbed by other work, and alternating keeps the ratios side by side.
func benchStore(ctx context.Context, r *runner) error {
	dir, err := r.tempDir("store")
	if err != nil {
		return err
	}
	bigPath := filepath.Join(dir, "big.db")
	start := time.Now()
	if err := fill(ctx, bigPath, bigLedger); err != nil {
		return fmt.Errorf("fill a 1M ledger: %w", err)
	}
	r.logf("store: filled %d reports in %s", bigLedger, time.Since(start).Round(time.Millisecond))
	big, err := store.Open(ctx, bigPath)
	if err != nil {
		return err
	}
	defer big.Close()

	var best struct{ raw, empty, big float64 }
	for i := 1; i <= rounds; i++ {
		m, err := storeRound(ctx, filepath.Join(dir, fmt.Sprint(i)), big)
		if err != nil {
			return err
		}
		r.logf("store: round %d: raw %.0f rows/s, empty %.0f reports/s, 1M %.0f reports/s", i, m.raw, m.empty, m.big)
		best.raw, best.empty, best.big = max(best.raw, m.raw), max(best.empty, m.empty), max(best.big, m.big)
	}
	r.report("sqlite_raw_batch_inserts_per_s", round(best.raw), "rows/s")
	r.report("store_group_commit_reports_per_s", round(best.empty), "reports/s")
	r.report("store_group_commit_vs_raw_ratio", round3(best.empty/best.raw), "ratio")
	r.report("store_ingest_empty_reports_per_s", round(best.empty), "reports/s")
	r.report("store_ingest_1m_reports_per_s", round(best.big), "reports/s")
	r.report("store_ingest_1m_vs_empty_ratio", round3(best.big/best.empty), "ratio")
	return nil
}

// storeRound measures each rate once: raw inserts and ingest into fresh
// files under prefix, then ingest into the big ledger.
func storeRound(ctx context.Context, prefix string, big *store.DB) (m struct{ raw, empty, big float64 }, err error) {
	if m.raw, err = rawInsertRate(ctx, prefix+"-raw.db"); err != nil {
		return m, fmt.Errorf("raw inserts: %w", err)
	}
	empty, err := store.Open(ctx, prefix+"-empty.db")
	if err != nil {
		return m, err
	}
	defer empty.Close()
	if m.empty, err = groupCommitRate(ctx, empty); err != nil {
		return m, fmt.Errorf("ingest on an empty ledger: %w", err)
	}
	if m.big, err = groupCommitRate(ctx, big); err != nil {
		return m, fmt.Errorf("ingest on a 1M ledger: %w", err)
	}
	return m, nil
}

// fill appends n reports in large batches: the quickest way to a big ledger
// through the store itself, aggregates included. The ledger is closed
// afterwards, as by a daemon restart, so that the measurements that follow
// do not also pay for checkpointing the fill.
func fill(ctx context.Context, path string, n int) error {
	db, err := store.Open(ctx, path)
	if err != nil {
		return err
	}
	defer db.Close()
	batch := make([]budget.Report, 0, bigBatch)
	for i := 0; i < n; i++ {
		batch = append(batch, simhost.Report())
		if len(batch) == cap(batch) || i == n-1 {
			if _, err := db.AppendReports(ctx, batch); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	return nil
}

// groupCommitRate has 64 submitters each send single reports through a
// Writer and wait for the answer, the way concurrent sidecars do.
func groupCommitRate(ctx context.Context, db *store.DB) (float64, error) {
	w := store.NewWriter(db)
	defer w.Close()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, submitters)
	start := time.Now()
	for g := 0; g < submitters; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= ingestReports {
				res, err := w.Submit(ctx, []budget.Report{simhost.Report()})
				if err == nil && res[0].Duplicate {
					err = fmt.Errorf("fresh report flagged duplicate")
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return 0, err
	}
	return ingestReports / elapsed.Seconds(), nil
}

// rawInsertRate is the baseline: plain database/sql inserts into a table
// shaped like the ledger's, same pragmas, 1,000 rows per transaction.
func rawInsertRate(ctx context.Context, path string) (float64, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)"+
		"&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_txlock=immediate")
	if err != nil {
		return 0, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, rawSchema); err != nil {
		return 0, err
	}
	start := time.Now()
	for done := 0; done < rawRows; done += rawTxRows {
		if err := rawTx(ctx, db); err != nil {
			return 0, err
		}
	}
	return rawRows / time.Since(start).Seconds(), nil
}

const rawSchema = `CREATE TABLE reports (
	seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, bottle TEXT NOT NULL, agent TEXT NOT NULL,
	provider TEXT NOT NULL, host TEXT NOT NULL, model TEXT NOT NULL, input INTEGER NOT NULL,
	cache_read INTEGER NOT NULL, cache_write INTEGER NOT NULL, output INTEGER NOT NULL,
	reasoning INTEGER NOT NULL, complete INTEGER NOT NULL, ts INTEGER NOT NULL, counted INTEGER NOT NULL);
CREATE INDEX reports_bottle_seq ON reports (bottle, seq);`

func rawTx(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	ins, err := tx.PrepareContext(ctx, `INSERT INTO reports (id, bottle, agent, provider, host, model,
		input, cache_read, cache_write, output, reasoning, complete, ts, counted)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer ins.Close()
	for i := 0; i < rawTxRows; i++ {
		r := simhost.Report()
		if _, err := ins.ExecContext(ctx, r.ID, r.Bottle, r.Agent, r.Provider, r.Host, r.Model, r.Input,
			r.CacheRead, r.CacheWrite, r.Output, r.Reasoning, r.Complete, r.TS.UnixNano(), r.Counted); err != nil {
			return err
		}
	}
	return tx.Commit()
}

func round(f float64) float64  { return float64(int64(f + 0.5)) }
func round3(f float64) float64 { return float64(int64(f*1000+0.5)) / 1000 }
