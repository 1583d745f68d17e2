package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/client"
	"github.com/bot-bottle/bottlecap/internal/testutil"
)

// TestDashInTmux drives the real binary as an operator would: `bottlecap
// serve` on a temporary home, `bottlecap dash` in a detached tmux session
// of 80 columns (the narrowest supported), keys sent with send-keys and the
// screen read back with capture-pane. Without tmux it is skipped, except
// in CI, where it fails.
func TestDashInTmux(t *testing.T) {
	tm := newTmux(t, 80, 24)
	home := newHome(t)
	p := startServe(t, home)
	c := client.New(p.sock, client.WithRetry(10*time.Second))
	t.Cleanup(func() { c.Close() })
	// bot-bottle's slugs: 17 characters, told apart by their suffix.
	const first, second, child = "implementer-b4d07", "implementer-b4e19", "implementer-90a1c"
	registerAndSpend(t, c, first, 300_000)
	registerAndSpend(t, c, second, 100_000)
	registerChild(t, c, child, first, 50_000)

	tm.start(fmt.Sprintf("env BOT_BOTTLE_HOME=%s BOTTLECAP_SOCKET= %s dash", shellQuote(home), shellQuote(bottlecapBinary(t))))
	tm.waitScreen("daemon: up", first, second, child)
	screen := tm.screen()
	for _, slug := range []string{first, second, child} {
		if rowOf(screen, slug) == "" { // a row that starts with the slug whole
			t.Errorf("at 80 columns no row shows %s whole:\n%s", slug, screen)
		}
	}
	row := rowOf(screen, first) // sorted by usage: the selected, first row
	if !strings.HasPrefix(row, "▸") || !strings.Contains(row, "● active") {
		t.Fatalf("first row = %q, want %s selected and active", row, first)
	}
	if !strings.Contains(rowOf(screen, child), "└ "+child) {
		t.Errorf("%s is not drawn under its parent:\n%s", child, screen)
	}
	tm.keys("c")
	tm.waitScreen("Cut off "+first+"?", "[ No ]")
	tm.keys("Tab") // the focus moves to Yes; Enter presses it
	tm.waitScreen("[ Yes ]")
	tm.keys("Enter")

	want := budget.CutOff
	if st, err := c.Status(context.Background()); err == nil && !st.Docker.Reachable {
		want = budget.Pending // no engine here: the cutoff is journaled and retried
	}
	tm.waitRow(first, map[budget.State]string{budget.CutOff: "■ cut off", budget.Pending: "◷ pending"}[want])
	testutil.Eventually(t, "the daemon reports "+first+" "+string(want), func() bool {
		b, err := c.Bottle(context.Background(), first)
		return err == nil && b.State == want
	})
	if row := tm.row(second); !strings.Contains(row, "● active") {
		t.Errorf("%s row = %q, want it still active", second, row)
	}
	tm.keys("q")
}

// registerChild registers a bottle under parent and reports n tokens of
// usage for it.
func registerChild(t *testing.T, c *client.Client, slug, parent string, n int64) {
	t.Helper()
	ctx := context.Background()
	if _, err := c.PutBottle(ctx, slug, api.BottleRequest{Agent: "implementer", Parent: parent}); err != nil {
		t.Fatalf("register %s: %v", slug, err)
	}
	r := api.Report{Report: budget.Report{ID: "msg_" + slug, Bottle: slug, Provider: "claude", Usage: budget.Usage{Input: n}}}
	if _, err := c.Ingest(ctx, []api.Report{r}); err != nil {
		t.Fatalf("report for %s: %v", slug, err)
	}
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
