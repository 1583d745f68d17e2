package fleet_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
	_ "time/tzdata" // the zones below, whatever the machine has

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/fleet"
)

// unitNanos are the sources' units, by source number (fleet.SpanPieces).
var unitNanos = []int64{1, int64(time.Minute), int64(time.Hour)}

// TestSpanPiecesCoverTheSpanOnce: the pieces of a span, whole hours,
// whole minutes and nanoseconds, cover each of its nanoseconds exactly
// once and nothing outside it, with at most one minute of reports and an
// hour of minutes at either end.
func TestSpanPiecesCoverTheSpanOnce(t *testing.T) {
	const m, h = int64(time.Minute), int64(time.Hour)
	spans := [][2]int64{
		{0, 0}, {-1, 0}, {0, math.MaxInt64}, {math.MinInt64, math.MaxInt64}, {math.MinInt64, math.MinInt64 + 1},
		{m - 1, m}, {m, 2*m - 1}, {m, 2*m - 2}, {m + 1, 2*m - 1}, {h, 2*h - 1}, {h - 1, 2 * h}, {h + 1, 2*h - 1},
		{-h, -1}, {-h - 1, -h + 1}, {math.MaxInt64 - 1, math.MaxInt64}, {math.MaxInt64 - 3*h, math.MaxInt64 - 1},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		first := rng.Int64N(1<<62) - 1<<61
		spans = append(spans, [2]int64{first, first + rng.Int64N([]int64{2 * m, 3 * h, 40 * 24 * h}[rng.IntN(3)])})
	}
	for _, s := range spans {
		sources, firsts, lasts := fleet.SpanPieces(s[0], s[1])
		type stretch struct{ first, last int64 }
		var got []stretch
		count := map[int32]int{}
		for _, src := range sources {
			count[src]++
		}
		for k, src := range sources {
			u := unitNanos[src]
			got = append(got, stretch{firsts[k] * u, lasts[k]*u + u - 1})
			// A piece is less than one unit of the next source up long
			// when there are pieces of bigger units, less than two when
			// there are none.
			bigger := count[src+1] + count[src+2]
			if next := unitNanos[min(src+1, 2)] / u; src < 2 && lasts[k]-firsts[k]+1 >= next*int64(2-min(bigger, 1)) {
				t.Errorf("span %v: a piece of source %d is %d units long", s, src, lasts[k]-firsts[k]+1)
			}
		}
		if count[0] > 2 || count[1] > 2 || count[2] > 1 {
			t.Errorf("span %v: pieces per source %v, want at most 2, 2, 1", s, count)
		}
		slices.SortFunc(got, func(a, b stretch) int {
			switch {
			case a.first < b.first:
				return -1
			case a.first > b.first:
				return 1
			}
			return 0
		})
		if len(got) == 0 || got[0].first != s[0] || got[len(got)-1].last != s[1] {
			t.Errorf("span %v: pieces cover %v", s, got)
			continue
		}
		for k := 1; k < len(got); k++ {
			if got[k].first != got[k-1].last+1 {
				t.Errorf("span %v: pieces %v and %v leave a gap or overlap", s, got[k-1], got[k])
			}
		}
	}
	if sources, _, _ := fleet.SpanPieces(5, 4); len(sources) != 0 {
		t.Errorf("an empty span has pieces %v", sources)
	}
}

// The random fleet of TestBucketsSumAsTheReports.
var (
	bucketHosts     = []string{"a", "b", "c"}
	bucketProviders = []string{"claude", "codex"}
	bucketWindows   = []string{"1m", "2m", "7m", "59m", "61m", "90m", "1h", "5h", "24h", "7d", "31d", "day", "week", "month"}
	bucketBase      = time.Date(2026, 3, 18, 10, 0, 0, 0, time.UTC)
)

func bucketZones(t *testing.T) []*time.Location {
	t.Helper()
	zones := []*time.Location{time.UTC, time.FixedZone("+0530", 5*3600+30*60), time.FixedZone("+0545", 5*3600+45*60),
		time.FixedZone("-0330", -(3*3600 + 30*60)), time.FixedZone("+1245", 12*3600+45*60)}
	for _, name := range []string{"America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu"} {
		loc, err := time.LoadLocation(name)
		if err != nil {
			t.Fatal(err)
		}
		zones = append(zones, loc)
	}
	return zones
}

// probe is a moment the view and a lease are read at, in a zone.
type probe struct {
	now time.Time
	loc *time.Location
}

// windowEdges are the report times a window's sum turns on at each probe: its
// start, a calendar period's end, a nanosecond either side of them.
func windowEdges(t *testing.T, probes []probe) []time.Time {
	var out []time.Time
	for _, p := range probes {
		for _, s := range bucketWindows {
			w := window(t, s)
			out = append(out, w.Since(p.now, p.loc))
			if w.Calendar() {
				_, end := w.Bounds(p.now, p.loc)
				out = append(out, end)
			}
		}
	}
	for _, e := range slices.Clone(out) {
		out = append(out, e.Add(-time.Nanosecond), e.Add(time.Nanosecond))
	}
	return out
}

func window(t *testing.T, s string) budget.Window {
	t.Helper()
	w, err := budget.ParseWindow(s)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// randomReports are a host's reports: some with no time (ts 0), some
// before 1970, many on and around the probes' window edges, the rest
// spread over six weeks.
func randomReports(rng *rand.Rand, n int, edges []time.Time) []budget.SeqReport {
	out := make([]budget.SeqReport, n)
	for i := range out {
		var ts time.Time
		switch k := rng.IntN(20); {
		case k < 2: // unknown: the zero time, ts 0
		case k < 3:
			ts = time.Unix(-rng.Int64N(1e9), rng.Int64N(1e9))
		case k < 10:
			ts = edges[rng.IntN(len(edges))]
			if rng.IntN(2) == 0 {
				ts = ts.Add(time.Duration(rng.Int64N(int64(4*time.Minute))) - 2*time.Minute)
			}
		default:
			ts = bucketBase.Add(time.Duration(rng.Int64N(int64(42*24*time.Hour))) - 40*24*time.Hour)
		}
		counted := rng.Int64N(100_000)
		out[i] = budget.SeqReport{Seq: int64(i + 1), Report: budget.Report{
			ID: fmt.Sprintf("r%d", i+1), Bottle: "b", Provider: bucketProviders[rng.IntN(len(bucketProviders))],
			Usage: budget.Usage{Input: counted}, Complete: true, TS: ts, Counted: counted,
		}}
	}
	return out
}

// shipRandomly ships a host's reports in batches of random sizes, some
// shipped again whole or in part, as a crash or a retry would.
func shipRandomly(t *testing.T, db *fleet.DB, rng *rand.Rand, host string, reports []budget.SeqReport) {
	t.Helper()
	ctx := ctxT(t)
	if err := db.Claim(ctx, host, host); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(reports); {
		j := min(len(reports), i+1+rng.IntN(60))
		if err := db.Ship(ctx, host, host, reports[i:j], 0); err != nil {
			t.Fatal(err)
		}
		if rng.IntN(4) == 0 {
			back := max(0, i-rng.IntN(40))
			if err := db.Ship(ctx, host, host, reports[back:j], 0); err != nil {
				t.Fatal(err)
			}
		}
		i = j
	}
}

// rawSums is every host's sum of provider's counted tokens with ts in
// [from, to) (to 0: no end), straight from the reports, as the view and
// the lease summed a window before the buckets.
func rawSums(t *testing.T, db *fleet.DB, provider string, from, to int64) map[string]int64 {
	t.Helper()
	sql := `SELECT host, LEAST(sum(counted), 9223372036854775807)::bigint FROM fleet_reports WHERE provider = $1 AND ts >= $2 AND ($3::bigint = 0 OR ts < $3::bigint) GROUP BY host`
	rows, err := db.Pool().Query(ctxT(t), sql, provider, from, to)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var host string
		var n int64
		if err := rows.Scan(&host, &n); err != nil {
			t.Fatal(err)
		}
		out[host] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func total(sums map[string]int64) int64 {
	var n int64
	for _, v := range sums {
		n += v
	}
	return n
}

// TestBucketsSumAsTheReports: over random reports (unknown times, times
// before 1970, times on and next to window edges, shipped in random
// batches with replays) and random windows in zones whose midnights fall
// on :30 and :45, the view and the lease read from the buckets exactly
// what summing the reports gave.
func TestBucketsSumAsTheReports(t *testing.T) {
	db, _ := open(t)
	ctx := ctxT(t)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 16))
	zones := bucketZones(t)
	var probes []probe
	for range 16 {
		now := bucketBase.Add(time.Duration(rng.Int64N(int64(36*24*time.Hour))) - 35*24*time.Hour)
		probes = append(probes, probe{now, zones[rng.IntN(len(zones))]})
	}
	edges := windowEdges(t, probes)
	for _, host := range bucketHosts {
		shipRandomly(t, db, rng, host, randomReports(rng, 700, edges))
	}

	for _, p := range probes {
		limits := budget.Limits{}
		for _, provider := range bucketProviders {
			for _, s := range bucketWindows {
				if rng.IntN(2) == 0 {
					limits[provider] = append(limits[provider], budget.Limit{Tokens: 1000, Window: window(t, s)})
				}
			}
		}
		v, err := db.ReadView(ctx, limits, p.loc, p.now)
		if err != nil {
			t.Fatal(err)
		}
		for provider, set := range limits {
			leased, err := db.LeaseWindows(ctx, provider, set, p.loc, p.now)
			if err != nil {
				t.Fatal(err)
			}
			for i, l := range set {
				since := l.Window.Since(p.now, p.loc).UnixNano()
				want := rawSums(t, db, provider, since, 0)
				for _, host := range bucketHosts {
					h, _ := v.Host(host)
					if got := h.Window[provider][l.Window]; got != want[host] {
						t.Errorf("at %s in %s, %s's %s %s: the view reads %d, the reports sum to %d", p.now, p.loc, host, provider, l.Window, got, want[host])
					}
				}
				until := int64(math.MaxInt64)
				if l.Window.Calendar() {
					_, end := l.Window.Bounds(p.now, p.loc)
					until = end.UnixNano()
				}
				if want := total(rawSums(t, db, provider, since, until)); leased[i] != want {
					t.Errorf("at %s in %s, %s %s: a lease reads %d, the reports sum to %d", p.now, p.loc, provider, l.Window, leased[i], want)
				}
			}
		}
	}

	// Spans the windows never make: negative, within a minute, the whole
	// line.
	for range 40 {
		first := edges[rng.IntN(len(edges))].UnixNano() + rng.Int64N(int64(time.Hour)) - int64(time.Hour)/2
		last := first + rng.Int64N([]int64{int64(time.Minute), int64(3 * time.Hour), int64(30 * 24 * time.Hour)}[rng.IntN(3)])
		checkSpan(t, db, first, last)
	}
	checkSpan(t, db, 0, 0)
	checkSpan(t, db, math.MinInt64, math.MaxInt64)
	checkSpan(t, db, -int64(time.Hour), int64(time.Minute))
}

// checkSpan compares the buckets' sums of [first, last] with the reports'.
func checkSpan(t *testing.T, db *fleet.DB, first, last int64) {
	t.Helper()
	for _, provider := range bucketProviders {
		got, err := db.SumSpan(ctxT(t), provider, first, last)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]int64{}
		rows, err := db.Pool().Query(ctxT(t), `SELECT host, sum(counted)::bigint FROM fleet_reports WHERE provider = $1 AND ts BETWEEN $2 AND $3 GROUP BY host`, provider, first, last)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var host string
			var n int64
			if err := rows.Scan(&host, &n); err != nil {
				t.Fatal(err)
			}
			want[host] = n
		}
		rows.Close()
		for _, host := range bucketHosts {
			if got[host] != want[host] {
				t.Errorf("%s [%d, %d] of %s: the buckets sum to %d, the reports to %d", provider, first, last, host, got[host], want[host])
			}
		}
	}
}

// bucketRows is a bucket table as (provider, time, host) → tokens.
func bucketRows(t *testing.T, db *fleet.DB, table string) map[[3]string]int64 {
	t.Helper()
	rows, err := db.Pool().Query(ctxT(t), fmt.Sprintf("SELECT provider, %s, host, tokens FROM %s", map[string]string{"fleet_usage_minutes": "minute", "fleet_usage_hours": "hour"}[table], table))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[[3]string]int64{}
	for rows.Next() {
		var provider, host string
		var at, n int64
		if err := rows.Scan(&provider, &at, &host, &n); err != nil {
			t.Fatal(err)
		}
		out[[3]string{provider, fmt.Sprint(at), host}] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// expectedBuckets are reports grouped as the buckets should hold them:
// ts rounded down to whole units (minus infinity-ward before 1970).
func expectedBuckets(host string, reports []budget.SeqReport, unit time.Duration) map[[3]string]int64 {
	out := map[[3]string]int64{}
	for _, r := range reports {
		var ts int64
		if !r.TS.IsZero() {
			ts = r.TS.UnixNano()
		}
		at := ts / int64(unit)
		if ts%int64(unit) < 0 {
			at--
		}
		out[[3]string{r.Provider, fmt.Sprint(at), host}] += r.Counted
	}
	return out
}

// TestShipRaisesBucketsByWhatItInserted: a batch raises its host's minute
// and hour buckets by its reports (ts 0 in minute 0, a time before 1970 in
// the minute before); shipping it again, or a batch overlapping it, raises
// them only by the reports that were new.
func TestShipRaisesBucketsByWhatItInserted(t *testing.T) {
	db, _ := open(t)
	ctx := ctxT(t)
	if err := db.Claim(ctx, "box", "i1"); err != nil {
		t.Fatal(err)
	}
	reports := append(batchOf(1, 70, "claude", 10), batchOf(71, 75, "codex", 3)...) // one a second from 10:00:01
	reports[0].TS = time.Time{}
	reports[1].TS = time.Unix(0, -1)
	for range 2 {
		if err := db.Ship(ctx, "box", "i1", reports[:40], 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Ship(ctx, "box", "i1", reports[20:], 0); err != nil {
		t.Fatal(err)
	}
	for table, unit := range map[string]time.Duration{"fleet_usage_minutes": time.Minute, "fleet_usage_hours": time.Hour} {
		got, want := bucketRows(t, db, table), expectedBuckets("box", reports, unit)
		if len(got) != len(want) {
			t.Errorf("%s: %v, want %v", table, got, want)
		}
		for k, n := range want {
			if got[k] != n {
				t.Errorf("%s %v: %d tokens, want %d", table, k, got[k], n)
			}
		}
	}
	minutes := bucketRows(t, db, "fleet_usage_minutes")
	for at, want := range map[string]int64{bucketTS(shipTS, time.Minute): 570, "0": 10, "-1": 10} {
		if got := minutes[[3]string{"claude", at, "box"}]; got != want {
			t.Errorf("claude's minute %s holds %d, want %d", at, got, want)
		}
	}
}

func bucketTS(ts time.Time, unit time.Duration) string {
	return fmt.Sprint(ts.UnixNano() / int64(unit))
}

// TestBucketsMigrationBackfills: migration 0003 puts the reports shipped
// before it in the buckets, and inserts into fleet_reports that bypass
// the shipper (a daemon of an older version) raise them too.
func TestBucketsMigrationBackfills(t *testing.T) {
	db, dsn := open(t)
	ctx := ctxT(t)
	// Back to the schema before 0003, with reports in it.
	if _, err := db.Pool().Exec(ctx, `DROP TRIGGER fleet_reports_bucket ON fleet_reports;
		DROP FUNCTION fleet_bucket_reports(); DROP FUNCTION fleet_floor_div(bigint, bigint);
		DROP TABLE fleet_usage_minutes, fleet_usage_hours;
		DELETE FROM fleet_schema_migrations WHERE version = 3`); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	before := randomReports(rng, 300, []time.Time{bucketBase})
	shipRandomly(t, db, rng, "old", before)
	if n := scalar[int](t, db, "SELECT count(*) FROM fleet_reports"); n != len(before) {
		t.Fatalf("%d reports before the migration, want %d", n, len(before))
	}
	again, err := fleet.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	again.Close()
	shipped(t, db, "older", 77, bucketBase) // straight into fleet_reports
	for table, unit := range map[string]time.Duration{"fleet_usage_minutes": time.Minute, "fleet_usage_hours": time.Hour} {
		got, want := bucketRows(t, db, table), expectedBuckets("old", before, unit)
		want[[3]string{"claude", bucketTS(bucketBase, unit), "older"}] = 77
		if len(got) != len(want) {
			t.Errorf("%s holds %d buckets, want %d", table, len(got), len(want))
		}
		for k, n := range want {
			if got[k] != n {
				t.Errorf("%s %v: %d tokens, want %d", table, k, got[k], n)
			}
		}
	}
}
