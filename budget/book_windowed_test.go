package budget_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
)

// limits parses "claude=5M/day+50M/month codex=1M" into limits.
func limits(t *testing.T, s string) budget.Limits {
	t.Helper()
	l := budget.Limits{}
	for _, item := range strings.Fields(s) {
		p, set, _ := strings.Cut(item, "=")
		parsed, err := budget.ParseLimitSet(set)
		if err != nil {
			t.Fatal(err)
		}
		l[p] = parsed
	}
	return l
}

// record counts a report of n claude tokens for bottle b at ts.
func record(b *budget.Book, bottle string, n int64, ts time.Time) []budget.Event {
	return b.Record(budget.Report{ID: ts.String(), Bottle: bottle, Agent: "impl", Provider: "claude", Counted: n, TS: ts})
}

// windowBook is a book under settings in zone with one bottle "b" holding
// the given limits.
func windowBook(t *testing.T, zoneName, bottleLimits string) *budget.Book {
	t.Helper()
	s := budget.DefaultSettings()
	s.Timezone = zone(t, zoneName)
	b := budget.NewBook(s)
	if err := b.Register(budget.Bottle{Slug: "b", Agent: "impl", Budget: limits(t, bottleLimits)}); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDailyLimitAroundMidnight(t *testing.T) {
	b := windowBook(t, "Europe/Berlin", "claude=100/day")
	record(b, "b", 60, instant(t, "2026-03-28T23:59:59+01:00"))
	if v := b.Verdict("b", "", "claude", 0); v.Used != 60 || v.Window != "day" || !v.ResetsAt.Equal(instant(t, "2026-03-29T00:00:00+01:00")) {
		t.Fatalf("just before midnight: got used %d window %q resets %s", v.Used, v.Window, v.ResetsAt)
	}
	events := record(b, "b", 60, instant(t, "2026-03-29T00:00:01+01:00"))
	v := b.Verdict("b", "", "claude", 0)
	if len(events) != 0 || v.Used != 60 || !v.Allowed {
		t.Errorf("just after midnight: got %v, used %d allowed %v; want the new day to count 60 and nothing crossed", events, v.Used, v.Allowed)
	}
	// The day Berlin springs forward has 23 hours.
	if !v.ResetsAt.Equal(instant(t, "2026-03-30T00:00:00+02:00")) {
		t.Errorf("got resets_at %s, want the next midnight, 23 hours on", v.ResetsAt)
	}
	if _, life, _ := b.Used("b", "impl", "claude"); life != 120 {
		t.Errorf("lifetime usage %d, want 120", life)
	}
}

func TestLateReportCountsInItsClosedWindow(t *testing.T) {
	b := windowBook(t, "UTC", "claude=100/day")
	record(b, "b", 90, instant(t, "2026-05-01T23:00:00Z"))
	b.Advance(instant(t, "2026-05-02T00:00:05Z"))
	// A report of yesterday arriving late counts yesterday, in the
	// ledger: not in today's window, and it crosses nothing today.
	if events := record(b, "b", 50, instant(t, "2026-05-01T23:59:59Z")); len(events) != 0 {
		t.Errorf("got events %v, want none", events)
	}
	if v := b.Verdict("b", "", "claude", 0); v.Used != 0 || !v.Allowed {
		t.Errorf("today: used %d allowed %v, want 0 and allowed", v.Used, v.Allowed)
	}
}

func TestCrossingNamesTheWindow(t *testing.T) {
	b := windowBook(t, "America/New_York", "claude=100/day")
	events := record(b, "b", 100, instant(t, "2026-11-01T10:00:00-05:00"))
	if len(events) != 1 || events[0].Kind != budget.EventCrossed || events[0].Window != budget.DayWindow {
		t.Fatalf("got %+v, want one crossing of the day window", events)
	}
	want := "bottle budget b exhausted for the day: 100 of 100 claude tokens used (resets at 2026-11-02T00:00:00-05:00)"
	if events[0].Reason != want {
		t.Errorf("got reason %q\nwant %q", events[0].Reason, want)
	}
	v := b.Verdict("b", "", "claude", 0)
	if v.Allowed || v.Reason != want {
		t.Errorf("verdict %+v, want denied with %q", v, want)
	}
}

func TestGoverningLimitOfSeveral(t *testing.T) {
	tests := []struct {
		name       string
		limits     string
		used       []int64 // claude tokens on 2026-06-10, 2026-06-11...
		wantWindow string
		wantUsed   int64
		allowed    bool
	}{
		{"least room: the day", "claude=100/day+1000/month", []int64{50}, "day", 50, true},
		{"least room: the month, after days of use", "claude=100/day+200/month", []int64{90, 90, 10}, "month", 190, true},
		{"exhausted day governs over a month with room", "claude=100/day+1000/month", []int64{100}, "day", 100, false},
		{"exhausted month governs over a fresh day", "claude=100/day+150/month", []int64{90, 60, 0}, "month", 150, false},
		{"lifetime beside a window", "claude=120+100/day", []int64{90, 20}, "life", 110, true},
		{"rolling span as written", "claude=100/5h+1000/week", []int64{80}, "5h", 80, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := windowBook(t, "UTC", tt.limits)
			day := instant(t, "2026-06-10T12:00:00Z")
			for i, n := range tt.used {
				ts := day.AddDate(0, 0, i)
				if n > 0 {
					record(b, "b", n, ts)
				}
				b.Advance(ts)
			}
			v := b.Verdict("b", "", "claude", 0)
			if v.Window != tt.wantWindow || v.Used != tt.wantUsed || v.Allowed != tt.allowed {
				t.Errorf("got window %q used %d allowed %v (%s), want %q %d %v", v.Window, v.Used, v.Allowed, v.Reason, tt.wantWindow, tt.wantUsed, tt.allowed)
			}
			if (v.Window == "day" || v.Window == "month" || v.Window == "week") == v.ResetsAt.IsZero() {
				t.Errorf("window %q resets at %v: want a time for a calendar window only", v.Window, v.ResetsAt)
			}
		})
	}
}

func TestRollingWindowSlides(t *testing.T) {
	b := windowBook(t, "UTC", "claude=500/5h")
	t0 := instant(t, "2026-06-10T10:00:00Z") // the start of a 5-minute bucket
	record(b, "b", 300, t0)
	record(b, "b", 200, t0.Add(2*time.Hour))
	if v := b.Verdict("b", "", "claude", 0); v.Allowed || v.Used != 500 || !v.ResetsAt.IsZero() {
		t.Fatalf("got %+v, want 500 of 500 used, denied, no resets_at", v)
	}
	if next := b.NextReset(); !next.Equal(t0.Add(5*time.Hour + 5*time.Minute)) {
		t.Errorf("next reset %s, want when the first report's bucket leaves the span", next)
	}
	// Exactly 5h on, the report is still in (a bucket leaves whole, at
	// most a sixtieth of the span late, never early).
	b.Advance(t0.Add(5*time.Hour + 5*time.Minute - time.Nanosecond))
	if v := b.Verdict("b", "", "claude", 0); v.Used != 500 {
		t.Errorf("just before the bucket leaves: used %d, want 500", v.Used)
	}
	if !b.Advance(t0.Add(5*time.Hour + 5*time.Minute)) {
		t.Error("Advance reported nothing dropped as the bucket left")
	}
	if v := b.Verdict("b", "", "claude", 0); !v.Allowed || v.Used != 200 {
		t.Errorf("after the first bucket left: used %d allowed %v, want 200, allowed", v.Used, v.Allowed)
	}
	b.Advance(t0.Add(7*time.Hour + 5*time.Minute))
	if v := b.Verdict("b", "", "claude", 0); v.Used != 0 || !b.NextReset().IsZero() {
		t.Errorf("after both left: used %d next %s, want 0 and no next reset", v.Used, b.NextReset())
	}
	// A report older than the span counts for life only.
	record(b, "b", 70, t0)
	if v := b.Verdict("b", "", "claude", 0); v.Used != 0 {
		t.Errorf("a report from beyond the span: used %d, want 0", v.Used)
	}
}

func TestWindowsOverTheSubtreeAndHost(t *testing.T) {
	s := budget.DefaultSettings()
	s.Budget = limits(t, "claude=1000/month")
	b := budget.NewBook(s)
	for _, bt := range []budget.Bottle{
		{Slug: "root", Agent: "impl", Budget: limits(t, "claude=300/day")},
		{Slug: "kid", Agent: "impl", Parent: "root", AgentBudgets: map[string]budget.Limits{"impl": limits(t, "claude=50/week")}},
	} {
		if err := b.Register(bt); err != nil {
			t.Fatal(err)
		}
	}
	ts := instant(t, "2026-06-10T12:00:00Z")
	record(b, "kid", 40, ts)
	record(b, "root", 100, ts)
	record(b, "ghost", 7, ts)
	if v := b.Verdict("kid", "", "claude", 0); v.Scope.Kind != budget.ScopeAgent || v.Used != 40 || v.Window != "week" {
		t.Errorf("kid: %+v, want its agent's week, 40 used", v)
	}
	if v := b.Verdict("kid", "other", "claude", 0); v.Scope.ID != "root" || v.Used != 140 {
		t.Errorf("kid's other agent: %+v, want root's day over the subtree, 140", v)
	}
	if v := b.GlobalVerdict("claude"); v.Used != 147 || v.Window != "month" {
		t.Errorf("global: %+v, want 147 this month", v)
	}
	// Moving the kid out takes its day's usage out of root's subtree.
	if err := b.Register(budget.Bottle{Slug: "kid", Agent: "impl", AgentBudgets: map[string]budget.Limits{"impl": limits(t, "claude=50/week")}}); err != nil {
		t.Fatal(err)
	}
	if v := b.Verdict("root", "", "claude", 0); v.Used != 100 {
		t.Errorf("root after the kid left: used %d, want 100", v.Used)
	}
}

func TestResetRestoresAndRearms(t *testing.T) {
	s := budget.DefaultSettings()
	b := budget.NewBook(s)
	for _, bt := range []budget.Bottle{
		{Slug: "daily", Agent: "impl", Budget: limits(t, "claude=100/day")},
		{Slug: "both", Agent: "impl", Budget: limits(t, "claude=100/day+150")},
		{Slug: "operator", Agent: "impl", Budget: limits(t, "claude=100/day")},
		{Slug: "warned", Agent: "impl", Budget: limits(t, "claude=100/day")},
	} {
		if err := b.Register(bt); err != nil {
			t.Fatal(err)
		}
	}
	day1 := instant(t, "2026-06-10T12:00:00Z")
	record(b, "daily", 100, day1)
	record(b, "both", 100, day1)
	record(b, "both", 60, day1.Add(time.Hour)) // past the lifetime 150 too
	record(b, "operator", 100, day1)
	if ev := record(b, "warned", 85, day1); len(ev) != 1 || ev[0].Kind != budget.EventWarn {
		t.Fatalf("got %v, want a warning", ev)
	}
	b.SetState("daily", budget.CutOff, "day exhausted", false)
	b.SetState("both", budget.CutOff, "day exhausted", false)
	b.SetState("operator", budget.CutOff, "by hand", true)
	b.SetState("warned", budget.Warned, "past its warn threshold", false)
	all := b.Slugs()
	if got := b.Restorable(all); len(got) != 0 {
		t.Fatalf("before the boundary %v are restorable, want none", got)
	}
	if !b.Advance(instant(t, "2026-06-11T00:00:00Z")) {
		t.Fatal("the boundary dropped nothing")
	}
	if got, want := b.Restorable(all), []string{"daily"}; !reflect.DeepEqual(got, want) {
		t.Errorf("restorable %v, want %v (both is still past its lifetime limit; the operator's cutoff stays)", got, want)
	}
	if got, want := b.Rearmable(all), []string{"warned"}; !reflect.DeepEqual(got, want) {
		t.Errorf("rearmable %v, want %v", got, want)
	}
	b.SetState("warned", budget.Active, "", false)
	if ev := record(b, "warned", 85, instant(t, "2026-06-11T09:00:00Z")); len(ev) != 1 || ev[0].Kind != budget.EventWarn {
		t.Errorf("the next day: got %v, want a fresh warning", ev)
	}
}

func TestWarnMarkPerWindow(t *testing.T) {
	now := instant(t, "2026-06-10T12:00:00Z")
	e := budget.Event{Window: budget.DayWindow, ResetsAt: instant(t, "2026-06-11T00:00:00+02:00")}
	if mark, until := e.WarnMark(now); mark != "day@2026-06-10T22:00:00Z" || !until.Equal(e.ResetsAt) {
		t.Errorf("day: %q until %s", mark, until)
	}
	if mark, until := (budget.Event{}).WarnMark(now); mark != "" || !until.IsZero() {
		t.Errorf("life: %q until %s, want no mark", mark, until)
	}
	e = budget.Event{Window: budget.RollingWindow(5, 'h')}
	mark, until := e.WarnMark(now)
	if mark != "5h@2026-06-10T14:00:00Z" || !until.Equal(instant(t, "2026-06-10T14:00:00Z")) {
		t.Errorf("rolling: %q until %s", mark, until)
	}
}

func TestLoadWindowsFromTheLedger(t *testing.T) {
	b := windowBook(t, "UTC", "claude=100/day+500/5h")
	now := instant(t, "2026-06-10T12:00:00Z")
	b.Advance(now)
	loads := b.WindowLoads(b.Windows(), b.Settings(), now)
	if len(loads) != 2 {
		t.Fatalf("got %d loads, want the day and the 5h window", len(loads))
	}
	day, rolling := loads[0], loads[1]
	if !day.Since.Equal(instant(t, "2026-06-10T00:00:00Z")) || !day.Until.Equal(instant(t, "2026-06-11T00:00:00Z")) || day.Step != 24*time.Hour {
		t.Errorf("day load %+v", day)
	}
	if !rolling.Since.Equal(instant(t, "2026-06-10T07:00:00Z")) || !rolling.Until.IsZero() || rolling.Step != 5*time.Minute {
		t.Errorf("rolling load %+v", rolling)
	}
	day.Rows = []budget.UsageBucket{{Bottle: "b", Agent: "impl", Provider: "claude", Start: day.Since, Counted: 70}}
	rolling.Rows = []budget.UsageBucket{{Bottle: "b", Agent: "impl", Provider: "claude", Start: instant(t, "2026-06-10T11:00:00Z"), Counted: 30}}
	b.LoadWindows([]budget.WindowLoad{day, rolling})
	if v := b.Verdict("b", "", "claude", 0); v.Window != "day" || v.Used != 70 {
		t.Errorf("got %+v, want the day's 70 from the ledger", v)
	}
	if _, sub, _ := b.UsedIn(budget.RollingWindow(5, 'h'), "b", "", "claude"); sub != 30 {
		t.Errorf("5h window holds %d, want 30", sub)
	}
	b.Advance(instant(t, "2026-06-10T16:05:00Z"))
	if _, sub, _ := b.UsedIn(budget.RollingWindow(5, 'h'), "b", "", "claude"); sub != 0 {
		t.Errorf("5h window holds %d after its bucket left, want 0", sub)
	}
}

func TestTimezoneChangeNeedsCalendarWindows(t *testing.T) {
	b := windowBook(t, "UTC", "claude=100/day+500/5h")
	s := budget.DefaultSettings()
	s.Timezone = zone(t, "Asia/Tokyo")
	if got := b.NewWindowsFor(s); !reflect.DeepEqual(got, []budget.Window{budget.DayWindow}) {
		t.Errorf("moving the timezone needs %v, want the day window again", got)
	}
	s = budget.DefaultSettings()
	s.Budget = limits(t, "claude=1M/month")
	if got := b.NewWindowsFor(s); !reflect.DeepEqual(got, []budget.Window{budget.MonthWindow}) {
		t.Errorf("a new month limit needs %v, want the month window", got)
	}
	if got := b.NewWindows(limits(t, "claude=5/day codex=7/week")); !reflect.DeepEqual(got, []budget.Window{budget.WeekWindow}) {
		t.Errorf("NewWindows = %v, want the week only", got)
	}
}

func TestWindowsInCrossings(t *testing.T) {
	b := windowBook(t, "UTC", "claude=100/day+1000/month")
	record(b, "b", 99, instant(t, "2026-06-10T12:00:00Z"))
	// Lowering the day limit under what today used is a crossing of the
	// day window.
	b.SetRuntime(budget.Scope{Kind: budget.ScopeBottle, ID: "b"}, limits(t, "claude=50/day+1000/month"))
	events := b.Crossings([]string{"b"}, nil)
	if len(events) != 1 || events[0].Window != budget.DayWindow || events[0].Kind != budget.EventCrossed {
		t.Fatalf("got %+v, want the day's crossing", events)
	}
	// An operator who lets the bottle run is exempt from that day, but
	// not from the month.
	b.SetState("b", budget.Active, "restored", true)
	ex := b.OperatorExempt([]string{"b"})
	b.SetRuntime(budget.Scope{Kind: budget.ScopeBottle, ID: "b"}, limits(t, "claude=50/day+90/month"))
	events = b.Crossings([]string{"b"}, ex)
	if len(events) != 1 || events[0].Window != budget.MonthWindow {
		t.Errorf("got %+v, want the month's crossing only", events)
	}
}

func TestGrantRespectsEveryWindow(t *testing.T) {
	tests := []struct {
		name       string
		prec       budget.Precedence
		global     string
		want       int64
		wantWindow string
	}{
		// b: 100/day (60 used today, 30 held: room 10) and 1000/month
		// (660 used, 30 held: room 310).
		{"nearest: the day's room", budget.Nearest, "735/month", 10, "day"},
		// Under strict the global month (700 used of 735, 30 held: room
		// 5) is tighter still.
		{"strict: the global month's room", budget.Strict, "735/month", 5, "month"},
		{"strict: the day's room under a looser host", budget.Strict, "800/month", 10, "day"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := budget.DefaultSettings()
			s.Precedence = tt.prec
			s.Budget = limits(t, "claude="+tt.global)
			b := budget.NewBook(s)
			if err := b.Register(budget.Bottle{Slug: "b", Agent: "impl", Budget: limits(t, "claude=100/day+1000/month")}); err != nil {
				t.Fatal(err)
			}
			record(b, "b", 600, instant(t, "2026-06-09T12:00:00Z"))
			record(b, "other", 40, instant(t, "2026-06-09T12:00:00Z"))
			record(b, "b", 60, instant(t, "2026-06-10T12:00:00Z"))
			b.Hold("b", "impl", "claude", 30)
			got, v := b.Grant("b", "impl", "claude", 500)
			if got != tt.want || v.Window != tt.wantWindow {
				t.Errorf("granted %d by the %s window (%s), want %d by the %s", got, v.Window, v.Reason, tt.want, tt.wantWindow)
			}
		})
	}
}
