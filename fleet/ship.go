package fleet

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bot-bottle/bottlecap/budget"
)

// insertReportsSQL inserts a batch (one array per column) and raises the
// host's lifetime usage per provider by exactly the rows it inserted: a
// report shipped before is skipped by the (host, id) key and adds
// nothing. Sums saturate at budget.MaxCounted as the local ledger's do.
var insertReportsSQL = fmt.Sprintf(`WITH batch AS (
	SELECT * FROM unnest($2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
		$9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[], $13::bigint[], $14::boolean[], $15::bigint[], $16::bigint[])
		AS b(id, seq, bottle, agent, provider, upstream, model, input, cache_read, cache_write, output, reasoning, complete, ts, counted)
), inserted AS (
	INSERT INTO fleet_reports (host, id, seq, bottle, agent, provider, upstream, model,
		input, cache_read, cache_write, output, reasoning, complete, ts, counted)
	SELECT $1, * FROM batch
	ON CONFLICT (host, id) DO NOTHING
	RETURNING provider, counted
)
INSERT INTO fleet_host_usage AS u (host, provider, shipped)
	SELECT $1, provider, LEAST(sum(counted), %[1]d)::bigint FROM inserted GROUP BY provider
	ON CONFLICT (host, provider) DO UPDATE SET shipped = LEAST(u.shipped::numeric + excluded.shipped, %[1]d)::bigint`, budget.MaxCounted)

// progressSQL records how far the host shipped, as its claim holder: no
// row means another instance holds the name, and the batch is rolled back.
const progressSQL = `UPDATE fleet_hosts SET shipped_seq = GREATEST(shipped_seq, $3), lag_ms = $4, last_seen = now()
	WHERE host = $1 AND instance = $2`

// Ship stores a batch of host's reports (in seq order) in one
// transaction, with the host's usage and shipped position, as the holder
// of the host's claim (else ErrClaimLost, and nothing is stored). Shipping
// a batch again changes nothing but last_seen and lag: the guarantee the
// shipper's crash recovery rests on.
func (db *DB) Ship(ctx context.Context, host, instance string, batch []budget.SeqReport, lag time.Duration) error {
	if len(batch) == 0 {
		return nil
	}
	cols := columnsOf(batch)
	last := batch[len(batch)-1].Seq
	return pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, progressSQL, host, instance, last, lag.Milliseconds())
		if err != nil {
			return fmt.Errorf("ship to the fleet: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("ship to the fleet as host %s: %w", host, ErrClaimLost)
		}
		if _, err := tx.Exec(ctx, insertReportsSQL, cols.args(host)...); err != nil {
			return fmt.Errorf("ship %d reports to the fleet (seq %d to %d): %w", len(batch), batch[0].Seq, last, err)
		}
		return nil
	})
}

// reportColumns are a batch as one slice per column, for unnest.
type reportColumns struct {
	id, bottle, agent, provider, upstream, model                      []string
	seq, input, cacheRead, cacheWrite, output, reasoning, ts, counted []int64
	complete                                                          []bool
}

func columnsOf(batch []budget.SeqReport) *reportColumns {
	n := len(batch)
	c := &reportColumns{
		id: make([]string, n), bottle: make([]string, n), agent: make([]string, n), provider: make([]string, n),
		upstream: make([]string, n), model: make([]string, n), seq: make([]int64, n), input: make([]int64, n),
		cacheRead: make([]int64, n), cacheWrite: make([]int64, n), output: make([]int64, n), reasoning: make([]int64, n),
		ts: make([]int64, n), counted: make([]int64, n), complete: make([]bool, n),
	}
	for i, r := range batch {
		c.id[i], c.seq[i], c.bottle[i], c.agent[i], c.provider[i] = r.ID, r.Seq, r.Bottle, r.Agent, r.Provider
		c.upstream[i], c.model[i] = r.Host, r.Model
		c.input[i], c.cacheRead[i], c.cacheWrite[i] = r.Input, r.CacheRead, r.CacheWrite
		c.output[i], c.reasoning[i], c.complete[i], c.counted[i] = r.Output, r.Reasoning, r.Complete, r.Counted
		c.ts[i] = unixNanos(r.TS)
	}
	return c
}

func (c *reportColumns) args(host string) []any {
	return []any{host, c.id, c.seq, c.bottle, c.agent, c.provider, c.upstream, c.model,
		c.input, c.cacheRead, c.cacheWrite, c.output, c.reasoning, c.complete, c.ts, c.counted}
}

// unixNanos is t in unix nanoseconds, 0 for the zero Time (unknown), as
// the local ledger stores it.
func unixNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}
