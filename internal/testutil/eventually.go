// Package testutil holds what bottlecap's tests share and production code
// never imports: waiting for asynchronous outcomes without asserting
// anything about time.
package testutil

import (
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/internal/retry"
)

// Within is how long Eventually waits: generous, because a loaded machine
// (two cores, -race, Docker) must not fail a test that only waits.
const Within = 30 * time.Second

// poll spaces the checks: quick at first, so a fast outcome is seen
// quickly, then gentle, so a slow check (an engine inspect, a tmux
// capture) is not hammered.
var poll = retry.Backoff{Base: time.Millisecond, Max: 50 * time.Millisecond}

// Eventually polls cond until it holds, failing the test with what if it
// still does not after Within.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	Until(t, Within, what, func() string {
		if cond() {
			return ""
		}
		return "never happened"
	})
}

// Until polls check until it returns "", failing the test after within
// with what and check's last message, which says what was seen instead.
func Until(t testing.TB, within time.Duration, what string, check func() string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for n := 1; ; n++ {
		msg := check()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %s", what, within, msg)
		}
		time.Sleep(poll.Ceiling(n))
	}
}
