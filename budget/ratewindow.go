package budget

import "time"

// RateSpan is the span a rate guard counts over, and how long a bottle's
// rate must stay under its guard before the guard lifts what it did.
const RateSpan = time.Minute

// rateSeconds is RateSpan in the window's buckets.
const rateSeconds = int64(RateSpan / time.Second)

// RateWindow counts the tokens one bottle reported for one provider over
// the last minute, by the clock of receipt the caller passes in. It is a
// sliding window of one-second buckets: a report counts for the sixty
// whole seconds from the one it arrived in, so the count is exact to the
// second, and a window never holds more than sixty buckets whatever the
// traffic (a few hundred bytes). The zero value is an empty window.
type RateWindow struct {
	buckets []rateBucket // oldest first; only seconds that had tokens
	total   int64
}

type rateBucket struct {
	sec int64 // unix second of receipt
	n   int64
}

// Add counts n tokens received at now; nothing counts nothing.
func (w *RateWindow) Add(now time.Time, n int64) {
	if n <= 0 {
		return
	}
	sec := now.Unix()
	w.expire(sec)
	w.total = SatAdd(w.total, n)
	if k := len(w.buckets); k > 0 && w.buckets[k-1].sec >= sec {
		// The same second, or a clock stepped back: the newest bucket takes
		// it, which keeps the buckets in order and never undercounts.
		w.buckets[k-1].n = SatAdd(w.buckets[k-1].n, n)
		return
	}
	w.buckets = append(w.buckets, rateBucket{sec, n})
}

// Count is the tokens received in the minute up to now.
func (w *RateWindow) Count(now time.Time) int64 {
	w.expire(now.Unix())
	return w.total
}

// CalmAt is when the count falls to guard or below if nothing more is
// received: now when it already is, else the moment the oldest buckets
// that keep it over the guard leave the window.
func (w *RateWindow) CalmAt(now time.Time, guard int64) time.Time {
	w.expire(now.Unix())
	left := w.total
	if left <= guard {
		return now
	}
	for _, b := range w.buckets {
		left -= b.n
		if left <= guard {
			return time.Unix(b.sec+rateSeconds, 0)
		}
	}
	return now // not reached: an empty window is under any guard
}

// Reset empties the window: after a restore the guard trips again only on
// a new excess.
func (w *RateWindow) Reset() { *w = RateWindow{} }

// Empty reports whether nothing is left in the window at now, so the
// window itself can be dropped.
func (w *RateWindow) Empty(now time.Time) bool { return w.Count(now) == 0 }

// expire drops the buckets that left the window by second sec. The slice
// is cut from the front; append reallocates it (live buckets only) when
// its capacity runs out, so it never grows past twice the window.
func (w *RateWindow) expire(sec int64) {
	i := 0
	for i < len(w.buckets) && w.buckets[i].sec <= sec-rateSeconds {
		w.total -= w.buckets[i].n
		i++
	}
	if i == len(w.buckets) {
		w.buckets, w.total = w.buckets[:0], 0
		return
	}
	w.buckets = w.buckets[i:]
}
