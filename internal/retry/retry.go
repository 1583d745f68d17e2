// Package retry holds the waiting every retry loop of bottlecap shares: a
// sleep that ends with its context and exponential backoff. It imports
// only the standard library, so that client, enforcement, meter and the
// demo may all use it without changing how the packages layer.
package retry

import (
	"context"
	"math/rand/v2"
	"time"
)

// Sleep waits d or until ctx is done, whichever comes first, without
// leaving a timer behind; it returns ctx's error when ctx ended the wait,
// so that a retry loop stops as soon as its caller gives up.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Backoff spaces retries: Base doubled per attempt, capped at Max. Delay
// adds "equal jitter" (half fixed, half random) so that many callers
// failing at once do not retry in lockstep; Ceiling is the plain doubling,
// for a single caller with nobody to fall in step with.
type Backoff struct {
	Base, Max time.Duration
	// Rand returns a number in [0, 1); nil means math/rand.
	Rand func() float64
}

// Ceiling is the wait before retry number attempt (1 = after the first
// failure) without jitter: Base doubled attempt-1 times, at most Max.
func (b Backoff) Ceiling(attempt int) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	if attempt < 32 && b.Base<<(attempt-1) > 0 && b.Base<<(attempt-1) < b.Max {
		return b.Base << (attempt - 1)
	}
	return b.Max
}

// Delay is the wait before retry number attempt (1 = after the first
// failure): between half of Ceiling and Ceiling.
func (b Backoff) Delay(attempt int) time.Duration {
	d := b.Ceiling(attempt)
	r := rand.Float64
	if b.Rand != nil {
		r = b.Rand
	}
	return d/2 + time.Duration(r()*float64(d/2))
}
