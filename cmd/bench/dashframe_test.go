package main

import "testing"

// TestDashFrame checks that the frame benchmark `make bench` runs works:
// the model took in a snapshot of all the bottles (dashFrame checks the
// rows and that a load ran); the time itself is a benchmark figure, never
// asserted.
func TestDashFrame(t *testing.T) {
	d, err := dashFrame(1000)
	if err != nil {
		t.Fatal(err)
	}
	if d <= 0 {
		t.Errorf("got a frame time of %v, want a measured duration", d)
	}
}

func TestDashFrameRejectsNoBottles(t *testing.T) {
	if _, err := dashFrame(0); err == nil {
		t.Error("dashFrame(0) succeeded, want an error")
	}
}

func BenchmarkDashFrame1000(b *testing.B) {
	for b.Loop() {
		if _, err := dashFrame(1000); err != nil {
			b.Fatal(err)
		}
	}
}
