package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/client"
	"github.com/bot-bottle/bottlecap/internal/testutil"
)

// TestDashInTmux drives the real binary as an operator would: `bottlecap
// serve` on a temporary home, `bottlecap dash` in a detached tmux session
// of fixed size, keys sent with send-keys and the screen read back with
// capture-pane. Without tmux it is skipped, except in CI, where it fails.
func TestDashInTmux(t *testing.T) {
	tm := newTmux(t, 120, 40)
	home := newHome(t)
	p := startServe(t, home)
	c := client.New(p.sock, client.WithRetry(10*time.Second))
	t.Cleanup(func() { c.Close() })
	registerAndSpend(t, c, "tmux-1", 300_000)
	registerAndSpend(t, c, "tmux-2", 100_000)

	tm.start(fmt.Sprintf("env BOT_BOTTLE_HOME=%s BOTTLECAP_SOCKET= %s dash", shellQuote(home), shellQuote(bottlecapBinary(t))))
	tm.waitScreen("daemon: up", "tmux-1", "tmux-2")
	row := tm.row("tmux-1") // sorted by usage: the selected, first row
	if !strings.HasPrefix(row, "▸") || !strings.Contains(row, "● active") {
		t.Fatalf("first row = %q, want tmux-1 selected and active", row)
	}
	tm.keys("c")
	tm.waitScreen("Cut off tmux-1?", "[ No ]")
	tm.keys("y")

	want := budget.CutOff
	if st, err := c.Status(context.Background()); err == nil && !st.Docker.Reachable {
		want = budget.Pending // no engine here: the cutoff is journaled and retried
	}
	tm.waitRow("tmux-1", map[budget.State]string{budget.CutOff: "■ cut off", budget.Pending: "◷ pending"}[want])
	testutil.Eventually(t, "the daemon reports tmux-1 "+string(want), func() bool {
		b, err := c.Bottle(context.Background(), "tmux-1")
		return err == nil && b.State == want
	})
	if row := tm.row("tmux-2"); !strings.Contains(row, "● active") {
		t.Errorf("tmux-2 row = %q, want it still active", row)
	}
	tm.keys("q")
}

// tmux is a private tmux server (its own socket, -L) for one test.
type tmux struct {
	t       *testing.T
	bin     string
	server  string
	session string
	w, h    int
}

// newTmux finds tmux: missing, the test is skipped locally and fails in CI.
func newTmux(t *testing.T, w, h int) *tmux {
	t.Helper()
	bin, err := exec.LookPath("tmux")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("tmux is required in CI (.ci/run installs it)")
		}
		t.Skip("tmux not installed")
	}
	server := fmt.Sprintf("bottlecap-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	tm := &tmux{t: t, bin: bin, server: server, session: "dash", w: w, h: h}
	t.Cleanup(func() {
		exec.Command(bin, "-L", server, "kill-session", "-t", tm.session).Run()
		exec.Command(bin, "-L", server, "kill-server").Run()
	})
	return tm
}

func (tm *tmux) run(args ...string) string {
	tm.t.Helper()
	out, err := exec.Command(tm.bin, append([]string{"-u", "-L", tm.server}, args...)...).CombinedOutput()
	if err != nil {
		tm.t.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// start runs a shell command in a detached session of the fixed size.
func (tm *tmux) start(command string) {
	tm.t.Helper()
	tm.run("new-session", "-d", "-s", tm.session, "-x", fmt.Sprint(tm.w), "-y", fmt.Sprint(tm.h),
		"env TERM=xterm-256color LANG=C.UTF-8 "+command)
}

func (tm *tmux) keys(keys ...string) {
	tm.t.Helper()
	tm.run(append([]string{"send-keys", "-t", tm.session}, keys...)...)
}

// screen is the pane's text as the operator sees it.
func (tm *tmux) screen() string {
	tm.t.Helper()
	return tm.run("capture-pane", "-p", "-t", tm.session)
}

// waitScreen polls the screen until every text shows, within a generous
// deadline; it asserts nothing about how long that takes.
func (tm *tmux) waitScreen(texts ...string) {
	tm.t.Helper()
	tm.waitFor(strings.Join(texts, ", "), func(s string) bool {
		for _, x := range texts {
			if !strings.Contains(s, x) {
				return false
			}
		}
		return true
	})
}

// waitRow polls until a bottle's table row contains text.
func (tm *tmux) waitRow(slug, text string) {
	tm.t.Helper()
	tm.waitFor(slug+" row with "+text, func(s string) bool { return strings.Contains(rowOf(s, slug), text) })
}

func (tm *tmux) waitFor(what string, cond func(screen string) bool) {
	tm.t.Helper()
	testutil.Until(tm.t, testutil.Within, "never on screen: "+what, func() string {
		if s := tm.screen(); !cond(s) {
			return "last screen:\n" + s
		}
		return ""
	})
}

// row is a bottle's table row on the current screen.
func (tm *tmux) row(slug string) string {
	tm.t.Helper()
	return rowOf(tm.screen(), slug)
}

// rowOf finds the table row of slug: the line that starts with it, after
// the selection marker and tree branches (the status line may name the
// bottle too, but never first).
func rowOf(screen, slug string) string {
	for _, line := range strings.Split(screen, "\n") {
		if strings.HasPrefix(strings.TrimLeft(line, " ▸└├│"), slug+" ") {
			return line
		}
	}
	return ""
}

// shellQuote quotes s for the shell tmux runs the command with.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
