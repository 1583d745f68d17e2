package budget

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Period is how a limit's window is measured (SPEC section 12).
type Period uint8

// The periods. Life is the zero value: a limit written without a window
// counts for the bottle's whole life, as it always did.
const (
	Life    Period = iota // the bottle's life: never resets
	Day                   // a calendar day, from 00:00 in the settings' timezone
	Week                  // an ISO week, from Monday 00:00
	Month                 // a calendar month, from the 1st at 00:00
	Rolling               // the last Span, sliding
)

// Window is the span a limit counts usage over: a calendar period that
// resets at its boundary, or a rolling span that slides. The zero Window
// is Life. A rolling window keeps the span as it was written (N of Unit),
// so that "300m" is shown as "300m", not "5h".
type Window struct {
	Period Period
	N      int32 // rolling: how many Units
	Unit   byte  // rolling: 'm', 'h' or 'd'
}

// LifeWindow, DayWindow, WeekWindow and MonthWindow are the windows with
// no span of their own.
var (
	LifeWindow  = Window{}
	DayWindow   = Window{Period: Day}
	WeekWindow  = Window{Period: Week}
	MonthWindow = Window{Period: Month}
)

// RollingWindow is a rolling window of n units ('m', 'h' or 'd').
func RollingWindow(n int32, unit byte) Window { return Window{Period: Rolling, N: n, Unit: unit} }

// rollingUnits are the units a rolling span is written in.
var rollingUnits = map[byte]time.Duration{'m': time.Minute, 'h': time.Hour, 'd': 24 * time.Hour}

// MaxRollingSpan bounds a rolling window: its usage is rebuilt from the
// ledger's reports of the span on start, so a span reaches no further back
// than a month does.
const MaxRollingSpan = 31 * 24 * time.Hour

// windowHint lists the window forms in error messages.
const windowHint = "(want day, week, month, or a rolling span of whole minutes, hours or days such as 30m, 5h, 7d)"

// ParseWindow reads a window as written after a limit's slash: life, day,
// week, month, or a rolling span: a whole number of m, h or d, from 1m to
// 31d. Errors are *TokenError (wrapping ErrInvalid).
func ParseWindow(s string) (Window, error) {
	w, msg := parseWindow(s)
	if msg != "" {
		return Window{}, &TokenError{Reason: msg}
	}
	return w, nil
}

func parseWindow(s string) (Window, string) {
	switch s {
	case "life":
		return LifeWindow, ""
	case "day":
		return DayWindow, ""
	case "week":
		return WeekWindow, ""
	case "month":
		return MonthWindow, ""
	case "":
		return Window{}, "empty window after '/' " + windowHint
	}
	unit, ok := rollingUnits[s[len(s)-1]]
	num := s[:len(s)-1]
	n, err := strconv.ParseInt(num, 10, 32)
	if !ok || err != nil || num == "" || num[0] < '0' || num[0] > '9' {
		if ok && strings.Contains(num, ".") {
			return Window{}, fmt.Sprintf("%q is not a whole number of %s %s", s, unitName(s[len(s)-1]), windowHint)
		}
		return Window{}, fmt.Sprintf("%q is not a window %s", s, windowHint)
	}
	if n < 1 {
		return Window{}, fmt.Sprintf("%q is an empty rolling window (want at least 1%c)", s, s[len(s)-1])
	}
	if n > int64(MaxRollingSpan/unit) {
		return Window{}, fmt.Sprintf("%q is longer than the longest rolling window, 31d (use month for a calendar month)", s)
	}
	return RollingWindow(int32(n), s[len(s)-1]), ""
}

func unitName(u byte) string {
	switch u {
	case 'm':
		return "minutes"
	case 'h':
		return "hours"
	}
	return "days"
}

// String is the window as verdicts and listings name it: life, day, week,
// month, or the rolling span as written (5h).
func (w Window) String() string {
	switch w.Period {
	case Life:
		return "life"
	case Day:
		return "day"
	case Week:
		return "week"
	case Month:
		return "month"
	}
	return strconv.Itoa(int(w.N)) + string(w.Unit)
}

// Calendar reports whether the window resets at calendar boundaries.
func (w Window) Calendar() bool { return w.Period == Day || w.Period == Week || w.Period == Month }

// Span is a rolling window's length (0 for any other).
func (w Window) Span() time.Duration {
	if w.Period != Rolling {
		return 0
	}
	return time.Duration(w.N) * rollingUnits[w.Unit]
}

// Bounds are the start and end of the calendar window holding t, in loc:
// [start, end). A day runs from 00:00 to the next day's 00:00 (23 or 25
// hours across a change of daylight saving time), an ISO week from Monday
// 00:00 for 7 days, a month from the 1st at 00:00. For Life and Rolling
// windows both are zero: they have no boundary.
func (w Window) Bounds(t time.Time, loc *time.Location) (start, end time.Time) {
	if !w.Calendar() {
		return time.Time{}, time.Time{}
	}
	local := t.In(loc)
	y, m, d := local.Date()
	switch w.Period {
	case Day:
		start, end = midnight(y, m, d, loc), midnight(y, m, d+1, loc)
	case Week:
		back := (int(local.Weekday()) + 6) % 7 // days since Monday
		start, end = midnight(y, m, d-back, loc), midnight(y, m, d-back+7, loc)
	case Month:
		start, end = midnight(y, m, 1, loc), midnight(y, m+1, 1, loc)
	}
	// Where 00:00 falls in a daylight-saving gap or fold, time.Date picks
	// one side of it; keep t inside its window whatever it picked.
	if t.Before(start) {
		start = t
	}
	if !t.Before(end) {
		end = t.Add(time.Nanosecond)
	}
	return start, end
}

// midnight is 00:00 of a (normalised) date in loc.
func midnight(y int, m time.Month, d int, loc *time.Location) time.Time {
	return time.Date(y, m, d, 0, 0, 0, 0, loc)
}

// rollingBuckets is how many buckets a rolling window's span is counted
// in: its usage leaves the window up to one bucket (a sixtieth of the
// span: a minute of an hour, five of 5h) after it is exactly span old,
// never before, so a rolling limit errs on the side of the budget.
const rollingBuckets = 60

// Step is the width of a rolling window's buckets: a sixtieth of its span
// (whole minutes make whole seconds).
func (w Window) Step() time.Duration { return w.Span() / rollingBuckets }

// bucket is the index of the rolling bucket holding t.
func (w Window) bucket(t time.Time) int64 { return floorDiv(t.UnixNano(), int64(w.Step())) }

// firstLive is the oldest bucket still in the rolling window at now: the
// one holding now - span, part of which is inside the window.
func (w Window) firstLive(now time.Time) int64 { return w.bucket(now.Add(-w.Span())) }

// bucketStart is the time bucket i starts.
func (w Window) bucketStart(i int64) time.Time { return time.Unix(0, i*int64(w.Step())).UTC() }

// floorDiv divides rounding toward minus infinity, so that times before
// 1970 fall in the bucket before, not after.
func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// Since is when the current period of w began at now, in loc: the start of
// the calendar window holding now; for a rolling window the start of its
// oldest bucket still counted, so usage summed from there (as the fleet
// does in Postgres) errs on the side of the budget as the local counts do;
// for Life the zero Time: everything counts.
func (w Window) Since(now time.Time, loc *time.Location) time.Time {
	switch {
	case w.Calendar():
		start, _ := w.Bounds(now, loc)
		return start
	case w.Period == Rolling:
		return w.bucketStart(w.firstLive(now))
	}
	return time.Time{}
}
