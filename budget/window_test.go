package budget_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
)

func zone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// instant parses a time written with its offset.
func instant(t *testing.T, s string) time.Time {
	t.Helper()
	ts, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func TestWindowBounds(t *testing.T) {
	tests := []struct {
		name       string
		window     budget.Window
		zone       string
		t          string
		start, end string
		hours      float64
	}{
		{"last instant of January", budget.MonthWindow, "UTC", "2026-01-31T23:59:59.999999999Z", "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z", 744},
		{"first instant of February", budget.MonthWindow, "UTC", "2026-02-01T00:00:00Z", "2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z", 672},
		{"December rolls into the next year", budget.MonthWindow, "UTC", "2026-12-31T12:00:00Z", "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z", 744},
		{"leap day", budget.DayWindow, "UTC", "2028-02-29T13:00:00Z", "2028-02-29T00:00:00Z", "2028-03-01T00:00:00Z", 24},
		{"February of a leap year", budget.MonthWindow, "UTC", "2028-02-29T23:00:00Z", "2028-02-01T00:00:00Z", "2028-03-01T00:00:00Z", 696},
		{"the week of a leap day starts Monday", budget.WeekWindow, "UTC", "2028-02-29T13:00:00Z", "2028-02-28T00:00:00Z", "2028-03-06T00:00:00Z", 168},
		{"ISO week 53 from its Thursday", budget.WeekWindow, "UTC", "2026-12-31T10:00:00Z", "2026-12-28T00:00:00Z", "2027-01-04T00:00:00Z", 168},
		{"ISO week 53 from its Sunday, in the next year", budget.WeekWindow, "UTC", "2027-01-03T23:59:59Z", "2026-12-28T00:00:00Z", "2027-01-04T00:00:00Z", 168},
		{"a Monday starts its week", budget.WeekWindow, "UTC", "2027-01-04T00:00:00Z", "2027-01-04T00:00:00Z", "2027-01-11T00:00:00Z", 168},
		{"a day in a timezone, seen from UTC", budget.DayWindow, "Europe/Berlin", "2026-06-01T22:30:00Z", "2026-06-02T00:00:00+02:00", "2026-06-03T00:00:00+02:00", 24},
		{"Berlin springs forward: a 23-hour day", budget.DayWindow, "Europe/Berlin", "2026-03-29T12:00:00+02:00", "2026-03-29T00:00:00+01:00", "2026-03-30T00:00:00+02:00", 23},
		{"Berlin falls back: a 25-hour day", budget.DayWindow, "Europe/Berlin", "2026-10-25T12:00:00+01:00", "2026-10-25T00:00:00+02:00", "2026-10-26T00:00:00+01:00", 25},
		{"the week Berlin springs forward", budget.WeekWindow, "Europe/Berlin", "2026-03-29T23:00:00+02:00", "2026-03-23T00:00:00+01:00", "2026-03-30T00:00:00+02:00", 167},
		{"the month Berlin falls back", budget.MonthWindow, "Europe/Berlin", "2026-10-31T23:59:00+01:00", "2026-10-01T00:00:00+02:00", "2026-11-01T00:00:00+01:00", 745},
		{"New York springs forward", budget.DayWindow, "America/New_York", "2026-03-08T03:30:00-04:00", "2026-03-08T00:00:00-05:00", "2026-03-09T00:00:00-04:00", 23},
		{"New York falls back, in the repeated hour", budget.DayWindow, "America/New_York", "2026-11-01T01:30:00-05:00", "2026-11-01T00:00:00-04:00", "2026-11-02T00:00:00-05:00", 25},
		{"New York, just before its midnight", budget.DayWindow, "America/New_York", "2026-07-02T03:59:59Z", "2026-07-01T00:00:00-04:00", "2026-07-02T00:00:00-04:00", 24},
		{"New York, at its midnight", budget.DayWindow, "America/New_York", "2026-07-02T04:00:00Z", "2026-07-02T00:00:00-04:00", "2026-07-03T00:00:00-04:00", 24},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start, end := tt.window.Bounds(instant(t, tt.t), zone(t, tt.zone))
			if !start.Equal(instant(t, tt.start)) || !end.Equal(instant(t, tt.end)) {
				t.Errorf("got [%s, %s), want [%s, %s)", start.Format(time.RFC3339), end.Format(time.RFC3339), tt.start, tt.end)
			}
			if got := end.Sub(start).Hours(); got != tt.hours {
				t.Errorf("got a %v-hour window, want %v", got, tt.hours)
			}
		})
	}
}

func TestISOWeek53(t *testing.T) {
	start, _ := budget.WeekWindow.Bounds(instant(t, "2027-01-02T12:00:00Z"), time.UTC)
	if y, w := start.ISOWeek(); y != 2026 || w != 53 {
		t.Errorf("the week of 2027-01-02 starts in ISO week %d-%d, want 2026-53", y, w)
	}
}

func TestLifeAndRollingHaveNoBounds(t *testing.T) {
	for _, w := range []budget.Window{budget.LifeWindow, budget.RollingWindow(5, 'h')} {
		if s, e := w.Bounds(instant(t, "2026-01-01T00:00:00Z"), time.UTC); !s.IsZero() || !e.IsZero() {
			t.Errorf("%s: got [%s, %s), want no bounds", w, s, e)
		}
	}
}

func TestParseWindow(t *testing.T) {
	good := map[string]struct {
		name string
		span time.Duration
	}{
		"life": {"life", 0}, "day": {"day", 0}, "week": {"week", 0}, "month": {"month", 0},
		"30m": {"30m", 30 * time.Minute}, "5h": {"5h", 5 * time.Hour}, "300m": {"300m", 5 * time.Hour},
		"7d": {"7d", 7 * 24 * time.Hour}, "31d": {"31d", 31 * 24 * time.Hour}, "1m": {"1m", time.Minute},
	}
	for in, want := range good {
		w, err := budget.ParseWindow(in)
		if err != nil || w.String() != want.name || w.Span() != want.span {
			t.Errorf("ParseWindow(%q) = %s (span %s), %v; want %s (span %s)", in, w, w.Span(), err, want.name, want.span)
		}
	}
	bad := map[string]string{
		"fortnight":    `"fortnight" is not a window`,
		"0h":           `"0h" is an empty rolling window (want at least 1h)`,
		"1.5h":         `"1.5h" is not a whole number of hours`,
		"-1h":          `"-1h" is not a window`,
		"32d":          `"32d" is longer than the longest rolling window, 31d`,
		"745h":         `"745h" is longer than the longest rolling window`,
		"99999999999d": `"99999999999d" is not a window`,
		"":             "empty window",
		"5s":           `"5s" is not a window`,
		"h":            `"h" is not a window`,
		"Day":          `"Day" is not a window`,
	}
	for in, want := range bad {
		_, err := budget.ParseWindow(in)
		if !errors.Is(err, budget.ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseWindow(%q) = %v, want an invalid error containing %q", in, err, want)
		}
	}
}

func TestParseLimitSet(t *testing.T) {
	good := map[string]string{
		"5M":                 "5000000",
		"5M/day":             "5000000/day",
		"1M/week":            "1000000/week",
		"20M/month":          "20000000/month",
		"500k/5h":            "500000/5h",
		"5M/day+50M/month":   "5000000/day+50000000/month",
		"50M/month + 5M/day": "5000000/day+50000000/month",
		"1G+500k/5h+2M/week": "1000000000+2000000/week+500000/5h",
		"1_000/30m+2_000/2h": "1000/30m+2000/2h",
		"0/day":              "0/day",
	}
	for in, want := range good {
		set, err := budget.ParseLimitSet(in)
		if err != nil || set.String() != want {
			t.Errorf("ParseLimitSet(%q) = %s, %v; want %s", in, set, err, want)
		}
	}
	bad := map[string]string{
		"5M/fortnight":  `"fortnight" is not a window`,
		"5M/0h":         `"0h" is an empty rolling window`,
		"5M/1.5h":       `"1.5h" is not a whole number of hours`,
		"5M/day+3M/day": "two limits for the same window",
		"5M+3M":         "two limits for the same window",
		"5M/":           "empty window",
		"5Q/day":        `"5Q" is not a token amount`,
		"5M/day+":       "empty token amount",
		"-5M/day":       "negative",
	}
	for in, want := range bad {
		_, err := budget.ParseLimitSet(in)
		if !errors.Is(err, budget.ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseLimitSet(%q) = %v, want an invalid error containing %q", in, err, want)
		}
	}
}

func TestLimitSetJSON(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{`1000`, `1000`},
		{`"1M"`, `1000000`},
		{`"5M/day"`, `"5000000/day"`},
		{`["5M/day", "50M/month"]`, `["5000000/day","50000000/month"]`},
		{`[1000, "5M/day"]`, `[1000,"5000000/day"]`},
		{`"5M/day+50M/month"`, `["5000000/day","50000000/month"]`},
		{`["500k/5h"]`, `"500000/5h"`},
	}
	for _, tt := range tests {
		var set budget.LimitSet
		if err := json.Unmarshal([]byte(tt.in), &set); err != nil {
			t.Errorf("unmarshal %s: %v", tt.in, err)
			continue
		}
		got, err := json.Marshal(set)
		if err != nil || string(got) != tt.want {
			t.Errorf("%s: marshalled %s, %v; want %s", tt.in, got, err, tt.want)
		}
	}
	bad := map[string]string{
		`"5M/fortnight"`:       "fortnight",
		`["5M/day", "5M/day"]`: "two limits for the same window",
		`[]`:                   "no limit given",
		`[["5M"]]`:             "[0]: invalid: want a number of tokens",
		`-1`:                   "not a whole non-negative number",
		`1.5`:                  "not a whole non-negative number",
		`{"day": 5}`:           "want a number of tokens",
		`["5M/day", "5M/0h"]`:  `[1]: invalid: "0h" is an empty rolling window`,
		`true`:                 "want a number of tokens",
		`[1, 2]`:               "two limits for the same window",
	}
	for in, want := range bad {
		var set budget.LimitSet
		err := json.Unmarshal([]byte(in), &set)
		if !errors.Is(err, budget.ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("unmarshal %s = %v, want an invalid error containing %q", in, err, want)
		}
	}
}

// TestLimitsJSONKeepsLifetimeNumbers holds the wire of lifetime limits
// (bottle rows, GET /v1/budgets) to what it was before windows.
func TestLimitsJSONKeepsLifetimeNumbers(t *testing.T) {
	got, err := json.Marshal(budget.Limits{"claude": budget.Lifetime(1000), "codex": budget.Lifetime(5)})
	if err != nil || string(got) != `{"claude":1000,"codex":5}` {
		t.Errorf("got %s, %v", got, err)
	}
	var back budget.Limits
	if err := json.Unmarshal([]byte(`{"claude":1000}`), &back); err != nil || back["claude"].String() != "1000" {
		t.Errorf("read back %v, %v", back, err)
	}
}

func TestWindowSince(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skip(err)
	}
	now := time.Date(2026, 3, 18, 10, 17, 42, 0, time.UTC) // a Wednesday
	tests := []struct {
		w    budget.Window
		loc  *time.Location
		want time.Time
	}{
		{budget.LifeWindow, time.UTC, time.Time{}},
		{budget.DayWindow, time.UTC, time.Date(2026, 3, 18, 0, 0, 0, 0, time.UTC)},
		{budget.DayWindow, berlin, time.Date(2026, 3, 17, 23, 0, 0, 0, time.UTC)},
		{budget.WeekWindow, time.UTC, time.Date(2026, 3, 16, 0, 0, 0, 0, time.UTC)},
		{budget.MonthWindow, time.UTC, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)},
		{budget.RollingWindow(1, 'h'), time.UTC, time.Date(2026, 3, 18, 9, 17, 0, 0, time.UTC)},
		{budget.RollingWindow(5, 'h'), time.UTC, time.Date(2026, 3, 18, 5, 15, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.w.String()+" "+tt.loc.String(), func(t *testing.T) {
			if got := tt.w.Since(now, tt.loc); !got.Equal(tt.want) {
				t.Errorf("Since = %v, want %v", got, tt.want)
			}
		})
	}
}
