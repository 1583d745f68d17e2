package tui_test

import (
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/tui"
)

// TestBenchFrame checks the frame benchmark runs and, outside the race
// detector, meets the 16 ms budget for 1,000 bottles.
func TestBenchFrame(t *testing.T) {
	d, err := tui.BenchFrame(1000)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("dash_frame_1000_ms %.2f", float64(d)/float64(time.Millisecond))
	if !raceEnabled && d > 16*time.Millisecond {
		t.Errorf("frame with 1000 bottles took %v, want under 16ms", d)
	}
}

func BenchmarkFrame1000(b *testing.B) {
	for b.Loop() {
		if _, err := tui.BenchFrame(1000); err != nil {
			b.Fatal(err)
		}
	}
}
