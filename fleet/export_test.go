package fleet

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bot-bottle/bottlecap/budget"
)

// Migrations lists the embedded migrations' file names in order.
func Migrations() ([]string, error) {
	all, err := fleetMigrations()
	var names []string
	for _, m := range all {
		names = append(names, m.Name)
	}
	return names, err
}

// LeaseLockSpace is the first key of the per-provider lease lock.
const LeaseLockSpace = leaseLockSpace

// LeaseSize is what one lease asks for a provider.
var LeaseSize = leaseSize

// SumSpan is every host's usage of provider over the report times [first,
// last] (unix nanoseconds, both included), read from the usage buckets as
// the view and the lease read a window.
func (db *DB) SumSpan(ctx context.Context, provider string, first, last int64) (map[string]int64, error) {
	rows, err := db.pool.Query(ctx, "WITH "+windowPartsSQL+" SELECT host, "+saturatedSum+" FROM parts GROUP BY host",
		splitSpans([]span{{provider: provider, first: first, last: last}}).args()...)
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	var host string
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&host, &n}, func() error {
		out[host] = n
		return nil
	})
	return out, err
}

// LeaseWindows is every host's shipped usage of provider in each window of
// limits, as a lease taken at now reads it.
func (db *DB) LeaseWindows(ctx context.Context, provider string, limits budget.LimitSet, loc *time.Location, now time.Time) ([]int64, error) {
	st, err := readFleet(ctx, db.pool, "nobody", provider, limits, loc, now)
	return st.shipped, err
}

// SpanPieces are the pieces a span of report times [first, last] is read
// in: per piece its source (0 reports, 1 minutes, 2 hours) and its first
// and last unit.
func SpanPieces(first, last int64) (sources []int32, firsts, lasts []int64) {
	p := splitSpans([]span{{provider: "p", first: first, last: last}})
	return p.source, p.first, p.last
}

// Round makes the keeper look at every provider once, as each tick of Run
// does: tests step keepers one round at a time.
func (k *Keeper) Round(ctx context.Context) { k.round(ctx) }
