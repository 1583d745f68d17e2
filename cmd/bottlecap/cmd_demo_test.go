package main

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/bot-bottle/bottlecap/internal/testutil"
)

// TestDemoNoDash runs `bottlecap demo --no-dash` in-process until a budget
// is crossed and the demo enforcer has finished the action, then stops it
// as Ctrl-C would and checks that its temporary home is gone.
func TestDemoNoDash(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	m := &Main{Stdin: strings.NewReader(""), Stdout: out, Stderr: out, Getenv: homeEnv(t)}
	code := make(chan int, 1)
	go func() { code <- m.Run(ctx, []string{"demo", "--no-dash", "--speed", "20", "--duration", "10m"}) }()
	stopped := false
	stop := func() int { cancel(); stopped = true; return <-code }
	t.Cleanup(func() {
		if !stopped {
			stop()
		}
	})

	testutil.Eventually(t, "a budget crossed and acted on\n"+out.String(), func() bool {
		s := out.String()
		return strings.Contains(s, "exhausted") && strings.Contains(s, "the demo touches no containers") &&
			strings.Contains(s, "action_done")
	})
	if got := stop(); got != 0 {
		t.Errorf("exit code = %d, want 0\n%s", got, out.String())
	}

	s := out.String()
	home := regexp.MustCompile(`temporary home (\S+)`).FindStringSubmatch(s)
	if home == nil {
		t.Fatalf("the demo did not say where its home is:\n%s", s)
	}
	if _, err := os.Stat(home[1]); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stat %s after the demo: %v, want it removed", home[1], err)
	}
	for _, want := range []string{"It touches no containers", "warn ", "demo: removed " + home[1]} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
}

func TestDemoRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{{"--speed", "0"}, {"--speed", "-1"}, {"extra"}} {
		out := &syncBuffer{}
		m := &Main{Stdin: strings.NewReader(""), Stdout: out, Stderr: out, Getenv: homeEnv(t)}
		if got := m.Run(context.Background(), append([]string{"demo"}, args...)); got != 2 {
			t.Errorf("demo %v: exit %d, want 2\n%s", args, got, out.String())
		}
	}
}
