package retry_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/internal/retry"
)

func TestBackoffDelay(t *testing.T) {
	tests := []struct {
		attempt int
		rand    float64
		want    time.Duration
	}{
		{1, 0, 50 * time.Millisecond},
		{1, 0.5, 75 * time.Millisecond},
		{3, 0, 200 * time.Millisecond},
		{5, 0, 500 * time.Millisecond}, // capped at Max
		{5, 0.999, 999500 * time.Microsecond},
		{100, 0, 500 * time.Millisecond}, // no overflow
	}
	for _, tt := range tests {
		b := retry.Backoff{Base: 100 * time.Millisecond, Max: time.Second, Rand: func() float64 { return tt.rand }}
		if got := b.Delay(tt.attempt); got != tt.want {
			t.Errorf("Delay(%d) with rand %v = %v, want %v", tt.attempt, tt.rand, got, tt.want)
		}
	}
}

func TestBackoffCeiling(t *testing.T) {
	b := retry.Backoff{Base: 50 * time.Millisecond, Max: time.Second}
	for _, tt := range []struct {
		attempt int
		want    time.Duration
	}{{0, 50 * time.Millisecond}, {1, 50 * time.Millisecond}, {2, 100 * time.Millisecond}, {5, 800 * time.Millisecond}, {6, time.Second}, {64, time.Second}} {
		if got := b.Ceiling(tt.attempt); got != tt.want {
			t.Errorf("Ceiling(%d) = %v, want %v", tt.attempt, got, tt.want)
		}
	}
}

// TestSleepEndsWithContext: a cancelled context ends the wait at once with
// its error, however long the wait asked for.
func TestSleepEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := retry.Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("Sleep on a cancelled context = %v, want context.Canceled", err)
	}
}

func TestSleepWaits(t *testing.T) {
	if err := retry.Sleep(context.Background(), time.Millisecond); err != nil {
		t.Errorf("Sleep(1ms) = %v, want nil", err)
	}
}
