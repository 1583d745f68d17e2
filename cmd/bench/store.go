package main

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/store"
)

func init() { register("store", benchStore) }

const (
	rawRows       = 100_000 // rows of the raw-insert baseline
	rawTxRows     = 1_000   // rows per raw transaction
	ingestReports = 20_000  // reports per group-commit measurement
	submitters    = 64
	bigLedger     = 1_000_000
	bigBatch      = 10_000 // reports per AppendReports while filling the big ledger
)

// benchStore measures the local SQLite limit and the store's group-commit
// ingest on an empty ledger and on one holding a million reports.
func benchStore(ctx context.Context, r *runner) error {
	dir, err := r.tempDir("store")
	if err != nil {
		return err
	}
	raw, err := rawInsertRate(ctx, filepath.Join(dir, "raw.db"))
	if err != nil {
		return fmt.Errorf("raw inserts: %w", err)
	}
	r.report("sqlite_raw_batch_inserts_per_s", round(raw), "rows/s")

	empty, err := ingestOnFreshLedger(ctx, filepath.Join(dir, "empty.db"), 0, r)
	if err != nil {
		return fmt.Errorf("ingest on an empty ledger: %w", err)
	}
	r.report("store_group_commit_reports_per_s", round(empty), "reports/s")
	r.report("store_group_commit_vs_raw_ratio", round3(empty/raw), "ratio")

	big, err := ingestOnFreshLedger(ctx, filepath.Join(dir, "big.db"), bigLedger, r)
	if err != nil {
		return fmt.Errorf("ingest on a 1M ledger: %w", err)
	}
	r.report("store_ingest_empty_reports_per_s", round(empty), "reports/s")
	r.report("store_ingest_1m_reports_per_s", round(big), "reports/s")
	r.report("store_ingest_1m_vs_empty_ratio", round3(big/empty), "ratio")
	return nil
}

// ingestOnFreshLedger opens a new ledger, fills it with prefill reports and
// measures group-commit ingest on it.
func ingestOnFreshLedger(ctx context.Context, path string, prefill int, r *runner) (float64, error) {
	db, err := store.Open(ctx, path)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	if prefill > 0 {
		start := time.Now()
		if err := fill(ctx, db, prefill); err != nil {
			return 0, err
		}
		r.logf("store: filled %d reports in %s", prefill, time.Since(start).Round(time.Millisecond))
	}
	return groupCommitRate(ctx, db)
}

// fill appends n reports in large batches: the quickest way to a big ledger
// through the store itself, aggregates included.
func fill(ctx context.Context, db *store.DB, n int) error {
	batch := make([]budget.Report, 0, bigBatch)
	for i := 0; i < n; i++ {
		batch = append(batch, newReport())
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
				res, err := w.Submit(ctx, []budget.Report{newReport()})
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

var (
	agents    = []string{"implementer", "reviewer", "planner"}
	providers = []string{"claude", "codex", "gemini"}
	hosts     = map[string]string{"claude": "api.anthropic.com", "codex": "api.openai.com", "gemini": "generativelanguage.googleapis.com"}
)

// newReport is a realistic report: a random upstream id, one of 100
// bottles, a few agents and providers, plausible token counts.
func newReport() budget.Report {
	p := providers[rand.IntN(len(providers))]
	u := budget.Usage{
		Input:     rand.Int64N(4000),
		CacheRead: rand.Int64N(50_000),
		Output:    rand.Int64N(2000),
	}
	u.Reasoning = u.Output / 3
	return budget.Report{
		ID:       fmt.Sprintf("msg_%016x%08x", rand.Uint64(), rand.Uint32()),
		Bottle:   fmt.Sprintf("implementer-%05d", rand.IntN(100)),
		Agent:    agents[rand.IntN(len(agents))],
		Provider: p, Host: hosts[p], Model: p + "-model-4-5",
		Usage: u, Complete: true, TS: time.Now(), Counted: u.Total(),
	}
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
		r := newReport()
		if _, err := ins.ExecContext(ctx, r.ID, r.Bottle, r.Agent, r.Provider, r.Host, r.Model, r.Input,
			r.CacheRead, r.CacheWrite, r.Output, r.Reasoning, r.Complete, r.TS.UnixNano(), r.Counted); err != nil {
			return err
		}
	}
	return tx.Commit()
}

func round(f float64) float64  { return float64(int64(f + 0.5)) }
func round3(f float64) float64 { return float64(int64(f*1000+0.5)) / 1000 }
