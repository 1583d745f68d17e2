package tui_test

import (
	"testing"

	"github.com/bot-bottle/bottlecap/tui"
)

// TestBenchFrame checks that the frame benchmark `make bench` runs works;
// the time itself is a benchmark figure, never asserted.
func TestBenchFrame(t *testing.T) {
	d, err := tui.BenchFrame(1000)
	if err != nil {
		t.Fatal(err)
	}
	if d <= 0 {
		t.Errorf("got a frame time of %v, want a measured duration", d)
	}
}

func BenchmarkFrame1000(b *testing.B) {
	for b.Loop() {
		if _, err := tui.BenchFrame(1000); err != nil {
			b.Fatal(err)
		}
	}
}
