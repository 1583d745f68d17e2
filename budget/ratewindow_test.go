package budget_test

import (
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func at(sec float64) time.Time { return t0.Add(time.Duration(sec * float64(time.Second))) }

// TestRateWindowSlides: a report counts for the sixty whole seconds from
// the one it arrived in, then leaves the window.
func TestRateWindowSlides(t *testing.T) {
	var w budget.RateWindow
	w.Add(at(0.5), 100)
	if got := w.Count(at(0.9)); got != 100 {
		t.Errorf("count at 0.9s = %d, want 100", got)
	}
	w.Add(at(30), 50)
	w.Add(at(30.9), 5)
	tests := []struct {
		sec  float64
		want int64
	}{
		{59.9, 155},
		{60, 55}, // the first second has left
		{89.9, 55},
		{90, 0},
	}
	for _, tt := range tests {
		if got := w.Count(at(tt.sec)); got != tt.want {
			t.Errorf("count at %gs = %d, want %d", tt.sec, got, tt.want)
		}
	}
	if !w.Empty(at(90)) {
		t.Error("a window with nothing in the last minute is not empty")
	}
}

// TestRateWindowCalmAt: when the count will fall to the guard if nothing
// more comes.
func TestRateWindowCalmAt(t *testing.T) {
	var w budget.RateWindow
	w.Add(at(0), 300)
	w.Add(at(10), 300)
	w.Add(at(20), 300)
	tests := []struct {
		guard int64
		want  time.Time
	}{
		{900, at(25)}, // already at the guard
		{600, at(60)},
		{300, at(70)},
		{100, at(80)},
	}
	for _, tt := range tests {
		if got := w.CalmAt(at(25), tt.guard); !got.Equal(tt.want) {
			t.Errorf("CalmAt(guard %d) = %v, want %v", tt.guard, got.Sub(t0), tt.want.Sub(t0))
		}
	}
}

// TestRateWindowBounded: however many reports arrive, the window holds one
// bucket per second of the last minute, and a clock stepped back counts in
// the newest bucket rather than out of order.
func TestRateWindowBounded(t *testing.T) {
	var w budget.RateWindow
	for i := range 100_000 {
		w.Add(at(float64(i)/100), 1) // 100 reports a second for 1000 s
	}
	if got := w.Count(at(999.99)); got != 6000 {
		t.Errorf("count = %d, want 6000 (the last 60 s at 100/s)", got)
	}
	if n := budget.RateBuckets(&w); n > 60 {
		t.Errorf("window holds %d buckets, want at most 60", n)
	}
	w.Add(at(500), 7) // the clock stepped back
	if got := w.Count(at(999.99)); got != 6007 {
		t.Errorf("after a step back count = %d, want 6007", got)
	}
	w.Reset()
	if got := w.Count(at(999.99)); got != 0 {
		t.Errorf("after reset count = %d, want 0", got)
	}
}

// BenchmarkRateWindowAdd is what the guard adds to each report counted:
// a report every millisecond, its count read back.
func BenchmarkRateWindowAdd(b *testing.B) {
	var w budget.RateWindow
	for i := 0; b.Loop(); i++ {
		now := t0.Add(time.Duration(i) * time.Millisecond)
		w.Add(now, 100)
		w.Count(now)
	}
}
