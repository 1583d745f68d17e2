package fleet

import (
	"fmt"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
)

// A window's usage is read from the usage buckets (migration 0003): each
// host's counted tokens per provider and whole unix minute, and per whole
// unix hour, raised by the database in the statement that inserts the
// reports. A window's report times are split so that its whole hours come
// from the hour buckets, the whole minutes around them from the minute
// buckets, and only what is left at either end — less than a minute each —
// from the reports themselves. The sum is the reports' sum over the window,
// exactly, wherever the window starts: a rolling window of 1m starts on a
// whole second, a calendar day at a local midnight that may fall at :30 or
// :45 past a UTC hour. A month of a host is then some 720 hour buckets and
// at most 2 × 59 minute buckets and 2 minutes of reports, however many
// reports it shipped.

// source is where a piece of a window's usage is read.
type source int32

const (
	fromReports source = iota // fleet_reports: ts in unix nanoseconds
	fromMinutes               // fleet_usage_minutes: whole unix minutes
	fromHours                 // fleet_usage_hours: whole unix hours
)

const (
	minuteNanos = int64(time.Minute)
	hourMinutes = 60
)

// span is the report times [first, last] (unix nanoseconds, both
// included) of one provider that a window counts.
type span struct {
	provider    string
	first, last int64
}

// pieces are spans split by source, as the arrays windowPartsSQL reads:
// piece k sums for span window[k] the times [first[k], last[k]] (both
// included) in the unit of source[k].
type pieces struct {
	window      []int64 // 1-based span index
	provider    []string
	source      []int32
	first, last []int64
}

// splitSpans splits every span into its pieces.
func splitSpans(spans []span) *pieces {
	p := &pieces{}
	for i, s := range spans {
		p.split(int64(i+1), s)
	}
	return p
}

func (p *pieces) add(window int64, provider string, src source, first, last int64) {
	if first > last {
		return
	}
	p.window = append(p.window, window)
	p.provider = append(p.provider, provider)
	p.source = append(p.source, int32(src))
	p.first = append(p.first, first)
	p.last = append(p.last, last)
}

// split adds the pieces of one span: its whole hours, the whole minutes
// around them and the nanoseconds around those.
func (p *pieces) split(window int64, s span) {
	m0, m1, ok := wholeUnits(s.first, s.last, minuteNanos)
	if !ok {
		p.add(window, s.provider, fromReports, s.first, s.last)
		return
	}
	// (m1+1) minutes does not overflow: it is at most last+1 ns, and 2⁶³
	// is no whole number of minutes.
	p.add(window, s.provider, fromReports, s.first, m0*minuteNanos-1)
	p.add(window, s.provider, fromReports, (m1+1)*minuteNanos, s.last)
	h0, h1, ok := wholeUnits(m0, m1, hourMinutes)
	if !ok {
		p.add(window, s.provider, fromMinutes, m0, m1)
		return
	}
	p.add(window, s.provider, fromMinutes, m0, h0*hourMinutes-1)
	p.add(window, s.provider, fromMinutes, (h1+1)*hourMinutes, m1)
	p.add(window, s.provider, fromHours, h0, h1)
}

// wholeUnits are the units [k0, k1] wholly inside [first, last]: k*unit ≥
// first and (k+1)*unit - 1 ≤ last; ok is false when there is none. Unit k
// holds the times [k*unit, (k+1)*unit), as the buckets' floor division
// puts them. No product is taken, so nothing overflows at either end of
// the line.
func wholeUnits(first, last, unit int64) (k0, k1 int64, ok bool) {
	k0 = first / unit // toward 0: the ceiling for a negative first
	if first%unit > 0 {
		k0++
	}
	k1, r := last/unit, last%unit
	if r < 0 { // the floor, and what is left of last past its unit
		k1--
		r += unit
	}
	if r != unit-1 { // last ends inside unit k1, not at its end
		k1--
	}
	return k0, k1, k0 <= k1
}

func (p *pieces) args() []any {
	return []any{p.window, p.provider, p.source, p.first, p.last}
}

// windowPartsSQL is a WITH list that reads pieces ($1 to $5, pieces.args)
// into parts(i, host, n): what each host used in piece's span i, per
// piece. Each source is an index range of its own (LATERAL keeps the
// planner from scanning a table for a join).
var windowPartsSQL = `p AS (
	SELECT * FROM unnest($1::bigint[], $2::text[], $3::int[], $4::bigint[], $5::bigint[]) AS p(i, provider, source, first, last)
), parts AS (
	SELECT p.i, s.host, s.n FROM p, LATERAL (
		SELECT r.host, sum(r.counted) AS n FROM fleet_reports r
			WHERE p.source = ` + fmt.Sprint(int32(fromReports)) + ` AND r.provider = p.provider AND r.ts BETWEEN p.first AND p.last GROUP BY r.host
		UNION ALL
		SELECT b.host, sum(b.tokens) FROM fleet_usage_minutes b
			WHERE p.source = ` + fmt.Sprint(int32(fromMinutes)) + ` AND b.provider = p.provider AND b.minute BETWEEN p.first AND p.last GROUP BY b.host
		UNION ALL
		SELECT b.host, sum(b.tokens) FROM fleet_usage_hours b
			WHERE p.source = ` + fmt.Sprint(int32(fromHours)) + ` AND b.provider = p.provider AND b.hour BETWEEN p.first AND p.last GROUP BY b.host
	) s
)`

// saturatedSum caps a numeric sum as every counter is capped.
var saturatedSum = fmt.Sprintf("LEAST(sum(n), %d)::bigint", budget.MaxCounted)
