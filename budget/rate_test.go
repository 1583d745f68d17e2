package budget_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/bot-bottle/bottlecap/budget"
)

func TestParseRate(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{
		{"300k/min", 300_000},
		{"1.5M/min", 1_500_000},
		{" 5_000 / min ", 5000},
		{"1/min", 1},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := budget.ParseRate(tt.in)
			if err != nil || got != tt.want {
				t.Errorf("ParseRate(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParseRateRejects(t *testing.T) {
	tests := []struct{ in, says string }{
		{"300k", "has no unit"},
		{"300k/h", "per minute only"},
		{"300k/sec", "per minute only"},
		{"300k/minute", "per minute only"},
		{"0/min", "above 0"},
		{"lots/min", "not a token amount"},
		{"-5/min", "negative"},
		{"/min", "empty token amount"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := budget.ParseRate(tt.in)
			var te *budget.TokenError
			if !errors.As(err, &te) || !errors.Is(err, budget.ErrInvalid) || !strings.Contains(te.Reason, tt.says) {
				t.Errorf("ParseRate(%q) = %v; want a TokenError saying %q", tt.in, err, tt.says)
			}
		})
	}
}

func TestFormatRateReadsBack(t *testing.T) {
	for n, want := range map[int64]string{300_000: "300k/min", 1_500_000: "1.5M/min", 12_345: "12345/min", 999: "999/min", 2_000_000_000: "2G/min", 2_500: "2.5k/min"} {
		got := budget.FormatRate(n)
		if got != want {
			t.Errorf("FormatRate(%d) = %q, want %q", n, got, want)
		}
		if back, err := budget.ParseRate(got); err != nil || back != n {
			t.Errorf("ParseRate(FormatRate(%d)) = %d, %v", n, back, err)
		}
	}
}

func TestRateReasonNamesCountProviderAndGuard(t *testing.T) {
	got := budget.RateReason(412_000, 300_000, "claude")
	want := "rate guard: 412,000 claude tokens in the last minute, over 300k/min"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestRateGuardResolution: a bottle's own guard, else its manifest name's,
// else its agent name's, else the default; an implicit bottle gets its own
// and the default only.
func TestRateGuardResolution(t *testing.T) {
	s := budget.DefaultSettings()
	s.Rate = budget.Rates{"claude": 1000, "codex": 2000}
	s.Bottles = map[string]budget.Defaults{"dev": {Rate: budget.Rates{"claude": 500}}}
	s.Agents = map[string]budget.Defaults{"reviewer": {Rate: budget.Rates{"claude": 300, "gemini": 50}}}
	b := world(t, s, []budget.Bottle{
		{Slug: "own", Name: "dev", Agent: "reviewer", Rate: budget.Rates{"claude": 10}},
		{Slug: "named", Name: "dev", Agent: "reviewer"},
		{Slug: "agent", Agent: "reviewer"},
		{Slug: "plain", Agent: "impl"},
		{Slug: "implicit", Agent: "reviewer", Implicit: true},
	})
	tests := []struct {
		slug, provider string
		want           int64
		ok             bool
	}{
		{"own", "claude", 10, true},
		{"own", "codex", 2000, true},
		{"named", "claude", 500, true},
		{"named", "gemini", 50, true},
		{"agent", "claude", 300, true},
		{"plain", "claude", 1000, true},
		{"plain", "gemini", 0, false},
		{"implicit", "claude", 1000, true},
		{"implicit", "gemini", 0, false},
		{"unknown", "codex", 2000, true},
	}
	for _, tt := range tests {
		got, ok := b.RateGuard(tt.slug, tt.provider)
		if got != tt.want || ok != tt.ok {
			t.Errorf("RateGuard(%s, %s) = %d, %v; want %d, %v", tt.slug, tt.provider, got, ok, tt.want, tt.ok)
		}
	}
	if got, want := b.RateGuards("named"), (budget.Rates{"claude": 500, "codex": 2000, "gemini": 50}); !reflect.DeepEqual(got, want) {
		t.Errorf("RateGuards(named) = %v, want %v", got, want)
	}
	if b.RatePolicy() != budget.Pause {
		t.Errorf("default rate policy %s, want pause", b.RatePolicy())
	}
}

// TestRateMarkLastsThroughItsOwnAction: the rate guard's mark stays while
// its action is pending and once done, and goes when an operator acts or
// the bottle runs again.
func TestRateMarkLastsThroughItsOwnAction(t *testing.T) {
	b := world(t, nil, []budget.Bottle{{Slug: "b", Agent: "a"}})
	mark := func() bool { bt, _ := b.Bottle("b"); return bt.ByRateGuard }
	b.TripRate("b", "rate guard: …")
	b.SetState("b", budget.Pending, "pause pending", false)
	b.SetState("b", budget.Paused, "rate guard: …", false)
	if bt, _ := b.Bottle("b"); !mark() || !bt.RateLiftable() {
		t.Fatalf("after the guard's pause: %+v, want its mark and liftable", bt)
	}
	b.SetState("b", budget.Active, "", false)
	if mark() {
		t.Error("an active bottle keeps the rate guard's mark")
	}
	b.TripRate("b", "again")
	b.SetState("b", budget.Pending, "cutoff pending: by operator", true)
	if mark() {
		t.Error("an operator's action keeps the rate guard's mark")
	}
}

// TestRestorableIncludesBudgetPausesNotTheGuards: a bottle a budget paused
// is restored when the budget rises, as one it cut off is; one the rate
// guard paused or cut off is not.
func TestRestorableIncludesBudgetPausesNotTheGuards(t *testing.T) {
	b := world(t, nil, []budget.Bottle{
		{Slug: "budget-paused", Agent: "a", Budget: budget.Limits{"claude": budget.Lifetime(1000)}},
		{Slug: "guard-paused", Agent: "a", Budget: budget.Limits{"claude": budget.Lifetime(1000)}},
		{Slug: "guard-cut", Agent: "a", Budget: budget.Limits{"claude": budget.Lifetime(1000)}},
	})
	b.SetState("budget-paused", budget.Paused, "bottle budget exhausted", false)
	for _, s := range []string{"guard-paused", "guard-cut"} {
		b.TripRate(s, "rate guard")
	}
	b.SetState("guard-paused", budget.Paused, "rate guard", false)
	b.SetState("guard-cut", budget.CutOff, "rate guard", false)
	if got, want := b.Restorable(b.Slugs()), []string{"budget-paused"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Restorable = %q, want %q", got, want)
	}
}

func TestPauseIsAPolicyAndAnAction(t *testing.T) {
	if p, err := budget.ParsePolicy("pause"); err != nil || budget.ActionFor(p) != budget.ActPause {
		t.Errorf("pause policy: %v, %v", p, err)
	}
	if a, err := budget.ParseActionKind("pause"); err != nil || budget.StateAfter(a) != budget.Paused {
		t.Errorf("pause action: %v, %v", a, err)
	}
	if !budget.Paused.Blocked() {
		t.Error("the gate would let a paused bottle spend")
	}
}
