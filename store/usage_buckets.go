package store

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
)

// usageBucketsSQL groups the reports of a time window into step-wide
// buckets aligned to the window's start. The range on ts reads only the
// reports_ts index (migration 0003), which covers every column used, so the
// cost follows the reports in the window, not the size of the ledger.
// total() rather than sum(): sum() fails the whole query with "integer
// overflow" should a bucket's counts pass int64 (reports are bounded, but
// weights are not); total() is a float, clamped when read.
const usageBucketsSQL = `SELECT bottle, agent, provider, (ts - ?1) / ?2 AS bucket,
	total(counted), count(*)
	FROM reports
	WHERE ts >= ?1 AND ts < ?3
	GROUP BY bottle, agent, provider, bucket
	ORDER BY bottle, agent, provider, bucket`

// MaxBucketsSpan bounds the window a UsageBuckets query reads, so that a
// careless since can never make it scan the whole ledger: the query is for
// burn rates and sparklines, which look at the last minutes or hours.
const MaxBucketsSpan = 7 * 24 * time.Hour

// UsageBuckets returns the counted tokens per (bottle, agent, provider) in
// step-wide buckets of [since, since+MaxBucketsSpan), for the dashboard's
// burn rates and sparklines. Buckets without reports are left out, and
// reports whose time is unknown (ts 0) are in no window.
func (db *DB) UsageBuckets(ctx context.Context, since time.Time, step time.Duration) ([]budget.UsageBucket, error) {
	if step <= 0 || since.IsZero() {
		return nil, fmt.Errorf("%w: usage buckets since %s by %s: want a time and a positive step", budget.ErrInvalid, since, step)
	}
	return db.buckets(ctx, "usage buckets", since, since.Add(MaxBucketsSpan), step)
}

// WindowUsage returns the counted tokens per (bottle, agent, provider) of
// the reports with since <= ts < until (until zero: no end) in step-wide
// buckets from since: how the daemon and the dashboard load a window's
// usage (budget.WindowLoad). It reads the reports_ts index only, the range
// of the window and no more: a month's reports at most, as windows reach
// no further back.
func (db *DB) WindowUsage(ctx context.Context, since, until time.Time, step time.Duration) ([]budget.UsageBucket, error) {
	if step <= 0 || since.IsZero() {
		return nil, fmt.Errorf("%w: window usage since %s by %s: want a time and a positive step", budget.ErrInvalid, since, step)
	}
	if until.IsZero() {
		until = time.Unix(0, math.MaxInt64)
	}
	return db.buckets(ctx, "window usage", since, until, step)
}

// buckets runs usageBucketsSQL over [since, until).
func (db *DB) buckets(ctx context.Context, what string, since, until time.Time, step time.Duration) ([]budget.UsageBucket, error) {
	from := toNanos(since)
	rows, err := db.read.QueryContext(ctx, usageBucketsSQL, from, int64(step), toNanos(until))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, classify(err))
	}
	defer rows.Close()
	var all []budget.UsageBucket
	for rows.Next() {
		var b budget.UsageBucket
		var i int64
		var counted float64
		if err := rows.Scan(&b.Bottle, &b.Agent, &b.Provider, &i, &counted, &b.Reports); err != nil {
			return nil, fmt.Errorf("%s: %w", what, classify(err))
		}
		b.Counted, _ = clampedCount(counted)
		b.Start = fromNanos(from + i*int64(step))
		all = append(all, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, classify(err))
	}
	return all, nil
}
