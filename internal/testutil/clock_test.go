package testutil_test

import (
	"slices"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/internal/testutil"
)

// TestClockFiresDueTimersInOrder: Advance runs the timers due by its end
// in the order they are due, each with the clock at its due time, and
// those they set when due in time; a stopped timer and a later one do not
// run.
func TestClockFiresDueTimersInOrder(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := testutil.NewClock(start)
	var got []string
	note := func(name string) func() {
		return func() { got = append(got, name+"@"+c.Now().Sub(start).String()) }
	}
	c.AfterFunc(3*time.Second, note("c"))
	c.AfterFunc(time.Second, func() {
		note("a")()
		c.AfterFunc(time.Second, note("b")) // due at 2s, within this Advance
	})
	stop := c.AfterFunc(2*time.Second, note("stopped"))
	c.AfterFunc(time.Minute, note("later"))
	if !stop() || stop() {
		t.Error("stop: want true once, then false")
	}
	c.Advance(5 * time.Second)
	if want := []string{"a@1s", "b@2s", "c@3s"}; !slices.Equal(got, want) {
		t.Errorf("fired %q, want %q", got, want)
	}
	if c.Now() != start.Add(5*time.Second) || c.Pending() != 1 {
		t.Errorf("after Advance: now %v, %d pending; want 5s, 1", c.Now().Sub(start), c.Pending())
	}
}
