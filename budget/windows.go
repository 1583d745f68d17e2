package budget

import (
	"sort"
	"time"
)

// windowCount is the usage of one window as the book keeps it: the same
// counters as lifetime usage (per agent, per bottle and its subtree, per
// host), over the current calendar period or a rolling window's live
// buckets. There is no reset job: a period's counters are dropped when the
// book's clock passes its end, and a rolling window's buckets leave it as
// they age, so what a window holds is always the ledger's reports whose
// time falls in it.
type windowCount struct {
	w          Window
	loc        *time.Location // calendar: the timezone of its bounds
	start, end time.Time      // calendar: the current period, [start, end)
	used       counters
	// buckets are a rolling window's live buckets: each bucket's counts
	// per (bottle, agent, provider), so that a bucket leaving the window
	// takes exactly its counts out of used. At most rollingBuckets+1 are
	// live at once, whatever the traffic.
	buckets map[int64]map[leafKey]int64
}

type leafKey struct{ bottle, agent, provider string }

// newWindowCount is an empty count of w over the period holding now.
func newWindowCount(w Window, loc *time.Location, now time.Time) *windowCount {
	wc := &windowCount{w: w, loc: loc, used: newCounters()}
	if w.Calendar() {
		wc.start, wc.end = w.Bounds(now, loc)
	} else {
		wc.buckets = map[int64]map[leafKey]int64{}
	}
	return wc
}

// holds reports whether a report dated ts counts in the window at now: in
// the current calendar period, or in a live rolling bucket. A report for
// a closed period counts there, in the ledger, not here.
func (wc *windowCount) holds(ts, now time.Time) bool {
	if wc.w.Calendar() {
		return !ts.Before(wc.start) && ts.Before(wc.end)
	}
	return wc.w.bucket(ts) >= wc.w.firstLive(now)
}

// add counts n tokens of a report dated ts (which holds) at the agent,
// bottle, lineage and host, as lifetime usage is counted.
func (wc *windowCount) add(k leafKey, ts time.Time, n int64, lineage []string) {
	wc.used.add(k.bottle, k.agent, k.provider, n, lineage)
	if wc.buckets == nil {
		return
	}
	i := wc.w.bucket(ts)
	bucket, ok := wc.buckets[i]
	if !ok {
		bucket = map[leafKey]int64{}
		wc.buckets[i] = bucket
	}
	bucket[k] = SatAdd(bucket[k], n)
}

// advance moves the window to now: a calendar period that ended gives way
// to an empty one (the period holding now), and rolling buckets that left
// the window take their counts with them. It reports whether any count
// dropped.
func (wc *windowCount) advance(now time.Time, lineage func(string) []string) bool {
	if wc.w.Calendar() {
		if now.Before(wc.end) {
			return false
		}
		wc.start, wc.end = wc.w.Bounds(now, wc.loc)
		dropped := len(wc.used.global) > 0
		wc.used = newCounters()
		return dropped
	}
	first, dropped := wc.w.firstLive(now), false
	for i, bucket := range wc.buckets {
		if i >= first {
			continue
		}
		for k, n := range bucket {
			wc.used.remove(k.bottle, k.agent, k.provider, n, lineage(k.bottle))
		}
		delete(wc.buckets, i)
		dropped = true
	}
	return dropped
}

// next is when the window's counts next drop: the end of a calendar
// period, or when a rolling window's oldest bucket leaves it (zero when it
// holds nothing).
func (wc *windowCount) next() time.Time {
	if wc.w.Calendar() {
		return wc.end
	}
	var next time.Time
	for i := range wc.buckets {
		at := wc.w.bucketStart(i + 1).Add(wc.w.Span())
		if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	return next
}

// noCounts reads as zero everywhere: the counts of a window the book does
// not keep.
var noCounts = counters{}

// window is the book's count of w, or nil. The book keeps a few windows
// (one per distinct window in force), so a scan beats a map's hash.
func (b *Book) window(w Window) *windowCount {
	for _, wc := range b.windows {
		if wc.w == w {
			return wc
		}
	}
	return nil
}

// setWindow keeps wc, in place of the book's count of its window.
func (b *Book) setWindow(wc *windowCount) {
	for i, have := range b.windows {
		if have.w == wc.w {
			b.windows[i] = wc
			return
		}
	}
	b.windows = append(b.windows, wc)
}

// count is the counters of a window: lifetime usage, or the window's.
func (b *Book) count(w Window) *counters {
	c, _ := b.countAndReset(w)
	return c
}

// countAndReset is the counters of a window and, for a calendar one, when
// its current period ends (zero for lifetime and rolling windows, which
// never reset as a whole), in one lookup: the gate asks for both.
func (b *Book) countAndReset(w Window) (*counters, time.Time) {
	if w == LifeWindow {
		return &b.used, time.Time{}
	}
	wc := b.window(w)
	switch {
	case wc == nil:
		return &noCounts, time.Time{}
	case w.Calendar():
		return &wc.used, wc.end
	}
	return &wc.used, time.Time{}
}

// recordWindows counts a report in every window its time falls in now.
func (b *Book) recordWindows(r Report, ts time.Time, lineage []string) {
	k := leafKey{r.Bottle, r.Agent, r.Provider}
	for _, wc := range b.windows {
		if wc.holds(ts, b.now) {
			wc.add(k, ts, r.Counted, lineage)
		}
	}
}

// inWindow reports whether a report dated ts counts in w now.
func (b *Book) inWindow(w Window, ts time.Time) bool {
	if w == LifeWindow {
		return true
	}
	wc := b.window(w)
	return wc != nil && wc.holds(ts, b.now)
}

// Now is the time the book's windows stand at: the latest time given to
// Advance or carried by a recorded report.
func (b *Book) Now() time.Time { return b.now }

// Advance moves the book's windows to now (never back): calendar periods
// that ended start again empty, rolling buckets that aged out leave. It
// reports whether any window's usage dropped, after which bottles a window
// cut off may be restored (Restorable) and warnings re-armed (Rearmable).
// The daemon calls it before it reads or counts, and at each boundary.
func (b *Book) Advance(now time.Time) bool {
	if !now.After(b.now) {
		return false
	}
	b.now = now
	dropped := false
	for _, wc := range b.windows {
		if wc.advance(now, b.lineage) {
			dropped = true
		}
	}
	return dropped
}

// NextReset is the next time a window's usage drops: the nearest end of a
// calendar period in force, or the time a rolling window's oldest bucket
// leaves it. Zero when no window will drop anything.
func (b *Book) NextReset() time.Time {
	var next time.Time
	for _, wc := range b.windows {
		if at := wc.next(); !at.IsZero() && (next.IsZero() || at.Before(next)) {
			next = at
		}
	}
	return next
}

// Windows lists the windows the book keeps, in their order (day, week,
// month, rolling spans).
func (b *Book) Windows() []Window {
	out := make([]Window, 0, len(b.windows))
	for _, wc := range b.windows {
		out = append(out, wc.w)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].before(out[j]) })
	return out
}

// windowsInForce is every window a limit of any source uses: settings,
// runtime, registrations and labels (an overridden limit's too, so that
// it is ready the moment what overrides it goes).
func (b *Book) windowsInForce(s *Settings) map[Window]bool {
	set := map[Window]bool{}
	s.windows(set)
	b.runtime.windows(set)
	for _, bt := range b.bottles {
		bt.windows(set)
	}
	return set
}

// windows adds every window the settings' limits use to set.
func (s *Settings) windows(set map[Window]bool) {
	s.Budget.windows(set)
	for _, d := range s.Bottles {
		d.Budget.windows(set)
	}
	for _, d := range s.Agents {
		d.Budget.windows(set)
	}
}

// windows adds every window the bottle's registration and labels use to
// set.
func (bt *Bottle) windows(set map[Window]bool) {
	bt.Budget.windows(set)
	bt.LabelBudget.windows(set)
	for _, l := range bt.AgentBudgets {
		l.windows(set)
	}
}

// WindowLoadsFor says what to read from the ledger, at now, for every
// window the limits of these rows use (those Rebuild puts in force): what
// a reader of the ledger such as the dashboard loads to see the windows
// the daemon's book keeps.
func WindowLoadsFor(s *Settings, bottles []Bottle, budgets []ScopeBudget, now time.Time) []WindowLoad {
	set := map[Window]bool{}
	s.windows(set)
	for _, b := range budgets {
		b.Limits.windows(set)
	}
	for i := range bottles {
		bottles[i].windows(set)
	}
	ws := make([]Window, 0, len(set))
	for w := range set {
		ws = append(ws, w)
	}
	sort.Slice(ws, func(i, j int) bool { return ws[i].before(ws[j]) })
	return windowLoadsAt(ws, s, now)
}

// NewWindows lists the windows limits use that the book does not keep
// yet. Putting such limits in force needs the windows' usage from the
// ledger (WindowLoads, LoadWindows); a book that is the whole truth (no
// ledger behind it) starts them empty.
func (b *Book) NewWindows(ls ...Limits) []Window {
	set := map[Window]bool{}
	for _, l := range ls {
		l.windows(set)
	}
	return b.unkept(set)
}

// NewWindowsFor is NewWindows for settings about to be put in force:
// the windows their limits use that the book does not keep, and, when
// they move the timezone, every calendar window in force, whose bounds
// move with it.
func (b *Book) NewWindowsFor(s *Settings) []Window {
	set := b.windowsInForce(s)
	moved := s.location().String() != b.settings.location().String()
	out := b.unkept(set)
	if moved {
		for w := range set {
			if b.window(w) != nil && w.Calendar() {
				out = append(out, w)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].before(out[j]) })
	return out
}

func (b *Book) unkept(set map[Window]bool) []Window {
	var out []Window
	for w := range set {
		if b.window(w) == nil {
			out = append(out, w)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].before(out[j]) })
	return out
}

// keepWindows starts an empty count of every window the limits use that
// the book does not keep yet.
func (b *Book) keepWindows(ls ...Limits) {
	for _, w := range b.NewWindows(ls...) {
		b.setWindow(newWindowCount(w, b.settings.location(), b.now))
	}
}

// rescanWindows keeps exactly the windows in force: new ones start empty,
// ones no limit uses any more are dropped, and calendar ones are started
// again when the timezone moved. Only a new book and SetSettings rescan:
// other changes only add windows, because a daemon loads a window's usage
// just before the change that puts it in force, and nothing may drop it
// in between.
func (b *Book) rescanWindows(movedZone bool) {
	set := b.windowsInForce(b.settings)
	kept := b.windows[:0]
	for _, wc := range b.windows {
		if set[wc.w] && !(movedZone && wc.w.Calendar()) {
			kept = append(kept, wc)
		}
	}
	clear(b.windows[len(kept):])
	b.windows = kept
	for w := range set {
		if b.window(w) == nil {
			b.setWindow(newWindowCount(w, b.settings.location(), b.now))
		}
	}
}

// WindowLoad is what the ledger holds of one window: its reports with
// Since <= ts < Until (Until zero: no end), summed per (bottle, agent,
// provider) in buckets Step wide from Since. A calendar window is one
// bucket, its current period; a rolling window is its live buckets.
type WindowLoad struct {
	Window       Window
	Since, Until time.Time
	Step         time.Duration
	Rows         []UsageBucket
	loc          *time.Location
}

// WindowLoads says what to read from the ledger to keep the windows from
// now on, under settings s (their timezone): fill each load's Rows, then
// hand them to LoadWindows while no report is counted in between.
func (b *Book) WindowLoads(ws []Window, s *Settings, now time.Time) []WindowLoad {
	if now.Before(b.now) {
		now = b.now
	}
	return windowLoadsAt(ws, s, now)
}

func windowLoadsAt(ws []Window, s *Settings, now time.Time) []WindowLoad {
	out := make([]WindowLoad, 0, len(ws))
	for _, w := range ws {
		l := WindowLoad{Window: w, loc: s.location()}
		if w.Calendar() {
			l.Since, l.Until = w.Bounds(now, l.loc)
			l.Step = l.Until.Sub(l.Since)
		} else {
			l.Since, l.Step = w.bucketStart(w.firstLive(now)), w.Step()
		}
		out = append(out, l)
	}
	return out
}

// LoadWindows starts keeping each window from the ledger's rows, in place
// of what the book kept of it. Rows of bottles the book does not know
// count toward the host and their own bottle, as lifetime usage does.
func (b *Book) LoadWindows(loads []WindowLoad) {
	for _, l := range loads {
		at := l.Since
		if at.Before(b.now) {
			at = b.now
		}
		wc := newWindowCount(l.Window, l.loc, at)
		if l.Window.Calendar() {
			wc.start, wc.end = l.Since, l.Until
		}
		for _, row := range l.Rows {
			wc.add(leafKey{row.Bottle, row.Agent, row.Provider}, row.Start, row.Counted, b.lineage(row.Bottle))
		}
		b.setWindow(wc)
		wc.advance(b.now, b.lineage)
	}
}
