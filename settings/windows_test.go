package settings_test

import (
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
)

func TestWindowedLimits(t *testing.T) {
	tests := []struct {
		in   string
		want string // claude's limits at the path checked
		at   func(s *budget.Settings) budget.LimitSet
	}{
		{"budget:\n  claude: 5M/day", "5000000/day", global},
		{"budget:\n  claude: 1M/week", "1000000/week", global},
		{"budget:\n  claude: 20M/month", "20000000/month", global},
		{"budget:\n  claude: 500k/5h", "500000/5h", global},
		{"budget:\n  claude: [5M/day, 50M/month]", "5000000/day+50000000/month", global},
		{"budget:\n  claude:\n    - 50M/month\n    - 5M/day\n    - 200M", "200000000+5000000/day+50000000/month", global},
		{"budget:\n  claude: 5M/day+50M/month", "5000000/day+50000000/month", global},
		{"budget:\n  claude: 5M", "5000000", global},
		{"bottles:\n  dev:\n    budget:\n      claude: [5M/day]", "5000000/day",
			func(s *budget.Settings) budget.LimitSet { return s.Bottles["dev"].Budget["claude"] }},
		{"agents:\n  claude-code:\n    budget:\n      claude: 300k/30m", "300000/30m",
			func(s *budget.Settings) budget.LimitSet { return s.Agents["claude-code"].Budget["claude"] }},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := tt.at(parse(t, tt.in)).String(); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func global(s *budget.Settings) budget.LimitSet { return s.Budget["claude"] }

func TestBadWindows(t *testing.T) {
	checkErrors(t, []errCase{
		{"budget:\n  claude: 5M/fortnight", 2, 14, "budget.claude", `"fortnight" is not a window (want day, week, month, or a rolling span`},
		{"budget:\n  claude: 5M/0h", 2, 14, "budget.claude", `"0h" is an empty rolling window (want at least 1h)`},
		{"budget:\n  claude: 5M/1.5h", 2, 14, "budget.claude", `"1.5h" is not a whole number of hours`},
		{"budget:\n  claude: 5M/32d", 2, 14, "budget.claude", `"32d" is longer than the longest rolling window, 31d`},
		{"budget:\n  claude: [5M/day, 5M/fortnight]", 2, 23, "budget.claude[1]", `"fortnight" is not a window`},
		{"budget:\n  claude:\n    - 5M/day\n    - 7M/0m", 4, 10, "budget.claude[1]", `"0m" is an empty rolling window`},
		{"budget:\n  claude: 5M/day+50M/fortnight", 2, 22, "budget.claude", `"fortnight" is not a window`},
		{"budget:\n  claude: 5M/day+5Q/month", 2, 18, "budget.claude", `"5Q" is not a token amount`},
		{"budget:\n  claude: \"5M/fortnight\"", 2, 11, "budget.claude", `"fortnight" is not a window`},
		{"budget:\n  claude: [5M/day, 6M/day]", 2, 11, "budget.claude", "two limits for the same window (5000000/day and 6000000/day)"},
		{"budget:\n  claude: []", 2, 11, "budget.claude", "empty list; give at least one limit"},
		{"budget:\n  claude: [5M/day, {month: 1}]", 2, 20, "budget.claude[1]", "want a limit such as 5M/day, got a mapping"},
		{"bottles:\n  dev:\n    budget:\n      claude: 1M/fortnight", 4, 18, "bottles.dev.budget.claude", `"fortnight" is not a window`},
	})
}

func TestTimezone(t *testing.T) {
	if s := parse(t, ""); s.Timezone != time.UTC {
		t.Errorf("default timezone %v, want UTC", s.Timezone)
	}
	for _, name := range []string{"UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"} {
		if s := parse(t, "timezone: "+name); s.Timezone.String() != name {
			t.Errorf("timezone: %s parsed as %v", name, s.Timezone)
		}
	}
	checkErrors(t, []errCase{
		{"timezone: Mars/Olympus", 1, 11, "timezone", `"Mars/Olympus" is not a timezone (want an IANA name such as UTC, Europe/Berlin or America/New_York)`},
		{"timezone: Local", 1, 11, "timezone", `"Local" is not a timezone`},
		{"timezone: /etc/localtime", 1, 11, "timezone", "is not a timezone"},
		{"timezone: ../../etc/passwd", 1, 11, "timezone", "is not a timezone"},
		{"timezone:", 1, 1, "timezone", "missing value"},
	})
}
