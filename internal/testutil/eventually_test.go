package testutil_test

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/bot-bottle/bottlecap/internal/testutil"
)

// TestEventuallyPollsUntilTrue: the condition is checked again until it
// holds, and no more often once it does.
func TestEventuallyPollsUntilTrue(t *testing.T) {
	var calls atomic.Int32
	testutil.Eventually(t, "third call", func() bool { return calls.Add(1) == 3 })
	if got := calls.Load(); got != 3 {
		t.Errorf("cond called %d times, want 3", got)
	}
}

// TestUntilFailsWithLastMessage runs Until in a test of its own that can
// never succeed and checks that it failed.
func TestUntilFailsWithLastMessage(t *testing.T) {
	ft := &fakeT{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		testutil.Until(ft, 0, "impossible", func() string { return "still no" })
	}()
	<-done
	if ft.fatal == "" {
		t.Fatal("Until returned without failing the test")
	}
	if want := "impossible: not within 0s: still no"; ft.fatal != want {
		t.Errorf("failure message %q, want %q", ft.fatal, want)
	}
}

// fakeT records Fatalf and ends the goroutine as testing.T does.
type fakeT struct {
	testing.TB
	fatal string
}

func (f *fakeT) Helper() {}

func (f *fakeT) Fatalf(format string, args ...any) {
	f.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
