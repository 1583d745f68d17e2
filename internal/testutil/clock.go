package testutil

import (
	"sync"
	"time"
)

// Clock is a clock a test moves by hand, for code that takes its time as
// a Now function and its timers as an AfterFunc one (the daemon's core
// does). Timers fire only when Advance moves the clock past them, in the
// order they are due, on the goroutine that calls Advance, with the clock
// reading their due time: after Advance returns, everything due has run,
// so a test asserts what followed with no wait and no sleep.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*clockTimer
	seq    int
}

type clockTimer struct {
	at  time.Time
	seq int // ties fire in the order they were set
	f   func()
}

// NewClock returns a clock reading start.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc sets f to run once the clock has moved d on; stop cancels it
// and reports whether it had not run yet, as time.Timer.Stop does.
func (c *Clock) AfterFunc(d time.Duration, f func()) (stop func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	t := &clockTimer{at: c.now.Add(d), seq: c.seq, f: f}
	c.timers = append(c.timers, t)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for i, have := range c.timers {
			if have == t {
				c.timers = append(c.timers[:i], c.timers[i+1:]...)
				return true
			}
		}
		return false
	}
}

// Advance moves the clock d on, running every timer due by then (and any
// they set that are due by then too).
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	c.mu.Unlock()
	for {
		t := c.next(end)
		if t == nil {
			break
		}
		t.f()
	}
	c.mu.Lock()
	c.now = end
	c.mu.Unlock()
}

// next removes and returns the first timer due by end, with the clock
// moved to its time; nil when none is.
func (c *Clock) next(end time.Time) *clockTimer {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := -1
	for j, t := range c.timers {
		if !t.at.After(end) && (i < 0 || t.at.Before(c.timers[i].at) || (t.at.Equal(c.timers[i].at) && t.seq < c.timers[i].seq)) {
			i = j
		}
	}
	if i < 0 {
		return nil
	}
	t := c.timers[i]
	c.timers = append(c.timers[:i], c.timers[i+1:]...)
	if t.at.After(c.now) {
		c.now = t.at
	}
	return t
}

// Pending is how many timers are set and have not fired.
func (c *Clock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}
