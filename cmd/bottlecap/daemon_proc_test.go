package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/client"
	"github.com/bot-bottle/bottlecap/enforcement/dockertest"
	"github.com/bot-bottle/bottlecap/internal/testutil"
	_ "modernc.org/sqlite"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// bottlecapBinary builds the real binary once per test run.
func bottlecapBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "bcbin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "bottlecap")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// proc is a `bottlecap serve` process on a temporary home.
type proc struct {
	t      *testing.T
	home   string
	sock   string
	cmd    *exec.Cmd
	stderr *syncBuffer
	exited chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newHome(t *testing.T) string {
	t.Helper()
	home, err := os.MkdirTemp("", "bch")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(home) })
	return home
}

// startServe runs the daemon and waits until it answers. It runs with the
// test's daemon id: with the engine on (serve's default) its world is
// what the test made, never a user's containers on the same engine.
func startServe(t *testing.T, home string) *proc {
	t.Helper()
	return startServeWith(t, home, []string{"--daemon-id", dockertest.DaemonID(t)})
}

// startServeWith runs `bottlecap serve` with args, and env added to the
// test's environment, and waits until it answers.
func startServeWith(t *testing.T, home string, args []string, env ...string) *proc {
	t.Helper()
	p := &proc{t: t, home: home, sock: filepath.Join(home, "run", "bottlecap.sock"), stderr: &syncBuffer{}, exited: make(chan error, 1)}
	p.cmd = exec.Command(bottlecapBinary(t), append([]string{"serve"}, args...)...)
	p.cmd.Env = append(append(os.Environ(), "BOT_BOTTLE_HOME="+home, "BOTTLECAP_SOCKET="), env...)
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() { p.kill() })
	c := client.New(p.sock, client.WithRetry(20*time.Second))
	defer c.Close()
	if _, err := c.Status(context.Background()); err != nil {
		t.Fatalf("daemon did not come up: %v\n%s", err, p.stderr.String())
	}
	return p
}

func (p *proc) kill() {
	if p.cmd.ProcessState == nil {
		p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.exited
		p.exited <- nil // later waiters see it ended
	}
}

// ledger opens the ledger directly, read-only, to recount it.
func ledger(t *testing.T, home string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(home, "bot-bottle.db")+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestCrashLosesNothingAcknowledged kills the daemon with SIGKILL three
// times while 16 clients ingest with retries, then checks that every
// acknowledged report is in the ledger exactly once and that the restarted
// daemon's counters equal a recount of the ledger.
func TestCrashLosesNothingAcknowledged(t *testing.T) {
	const clients, perClient, kills = 16, 150, 3
	home := newHome(t)
	p := startServe(t, home)
	var (
		mu    sync.Mutex
		acked = map[string]bool{}
		wg    sync.WaitGroup
	)
	done := make(chan struct{})
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := client.New(p.sock, client.WithRetry(60*time.Second), client.WithBackoff(5*time.Millisecond, 100*time.Millisecond))
			defer c.Close()
			for n := range perClient {
				id := fmt.Sprintf("c%02d-%04d", i, n)
				r := api.Report{Report: budget.Report{ID: id, Bottle: fmt.Sprintf("b%d", i%4), Agent: "a", Provider: "claude", Usage: budget.Usage{Input: int64(n%7 + 1)}}}
				if sendUntilAcked(c, r) {
					mu.Lock()
					acked[id] = true
					mu.Unlock()
				}
			}
		}()
	}
	go func() { wg.Wait(); close(done) }()
	for k := range kills {
		waitForAcks(t, &mu, acked, (k+1)*clients*perClient/(kills+1))
		p.kill()
		p = startServe(t, home)
	}
	<-done
	if len(acked) != clients*perClient {
		t.Fatalf("got %d acknowledged reports, want %d", len(acked), clients*perClient)
	}
	checkLedger(t, home, p, acked)
	if !strings.Contains(p.stderr.String(), "bottlecap ready") {
		t.Errorf("restarted daemon never said it was ready:\n%s", p.stderr.String())
	}
}

// sendUntilAcked retries one report until the daemon acknowledges it; a
// report whose reply was lost in a crash is sent again with the same id.
func sendUntilAcked(c *client.Client, r api.Report) bool {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		if _, err := c.Ingest(context.Background(), []api.Report{r}); err == nil {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// waitForAcks waits until n reports are acknowledged; a daemon killed
// mid-run may take its clients a while to reach again.
func waitForAcks(t *testing.T, mu *sync.Mutex, acked map[string]bool, n int) {
	t.Helper()
	testutil.Until(t, 2*time.Minute, "reports acknowledged", func() string {
		mu.Lock()
		defer mu.Unlock()
		if got := len(acked); got < n {
			return fmt.Sprintf("only %d of %d", got, n)
		}
		return ""
	})
}

// checkLedger compares the acknowledged ids, the ledger and the live
// daemon's counters.
func checkLedger(t *testing.T, home string, p *proc, acked map[string]bool) {
	t.Helper()
	db := ledger(t, home)
	rows, err := db.Query(`SELECT id FROM reports`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	stored := map[string]int{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		stored[id]++
	}
	for id := range acked {
		if stored[id] != 1 {
			t.Errorf("acknowledged report %s is stored %d times, want once", id, stored[id])
		}
	}
	c := client.New(p.sock)
	defer c.Close()
	for b := range 4 {
		slug := fmt.Sprintf("b%d", b)
		var recount, totals int64
		db.QueryRow(`SELECT COALESCE(SUM(counted),0) FROM reports WHERE bottle = ?`, slug).Scan(&recount)
		db.QueryRow(`SELECT COALESCE(SUM(counted),0) FROM totals WHERE bottle = ?`, slug).Scan(&totals)
		v, err := c.Verdict(context.Background(), client.VerdictQuery{Bottle: slug, Agent: "a", Provider: "claude"})
		if err != nil {
			t.Fatal(err)
		}
		if v.Used != recount || totals != recount {
			t.Errorf("%s: got daemon counter %d and aggregate %d, want the recount %d", slug, v.Used, totals, recount)
		}
	}
}

func TestSettingsReloadKeepsOldSettingsOnError(t *testing.T) {
	home := newHome(t)
	p := startServe(t, home)
	c := client.New(p.sock)
	defer c.Close()
	settings := filepath.Join(home, "settings.yml")
	precedence := func() string {
		st, err := c.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return st.Precedence
	}
	if err := os.WriteFile(settings, []byte("precedence: strict\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "file change reloaded", func() bool { return precedence() == "strict" })
	if err := os.WriteFile(settings, []byte("precedence: nearest\nwarn_at: 80%\nbudget:\n  claude: lots\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "bad file reported with line:column", func() bool {
		return strings.Contains(p.stderr.String(), "settings.yml:4:11")
	})
	if got := precedence(); got != "strict" {
		t.Errorf("after a bad file got precedence %s, want the old strict", got)
	}
	if err := os.WriteFile(settings, []byte("precedence: nearest\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGHUP)
	testutil.Eventually(t, "SIGHUP reloaded", func() bool { return precedence() == "nearest" })
}

// TestGracefulShutdownFinishesInFlight sends SIGTERM while 32 clients
// ingest: the daemon exits 0, and every report it acknowledged is stored.
func TestGracefulShutdownFinishesInFlight(t *testing.T) {
	home := newHome(t)
	p := startServe(t, home)
	var (
		mu    sync.Mutex
		acked []string
		wg    sync.WaitGroup
	)
	stop := make(chan struct{})
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := client.New(p.sock, client.WithRetry(0))
			defer c.Close()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("g%02d-%05d", i, n)
				_, err := c.Ingest(context.Background(), []api.Report{{Report: budget.Report{ID: id, Bottle: "b", Provider: "claude", Usage: budget.Usage{Output: 1}}}})
				if err != nil {
					if !errors.Is(err, client.ErrDaemonDown) && !errors.Is(err, budget.ErrUnavailable) {
						var ce *client.Error
						if errors.As(err, &ce) {
							t.Errorf("in-flight request got %v, want an ack or a refused connection", err)
						}
					}
					return
				}
				mu.Lock()
				acked = append(acked, id)
				mu.Unlock()
			}
		}()
	}
	testutil.Eventually(t, "some acks", func() bool { mu.Lock(); defer mu.Unlock(); return len(acked) > 200 })
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := <-p.exited; err != nil {
		t.Errorf("daemon exited with %v, want 0\n%s", err, p.stderr.String())
	}
	p.exited <- nil
	close(stop)
	wg.Wait()
	db := ledger(t, home)
	for _, id := range acked {
		var n int
		if db.QueryRow(`SELECT COUNT(*) FROM reports WHERE id = ?`, id).Scan(&n); n != 1 {
			t.Errorf("acknowledged %s stored %d times, want 1", id, n)
		}
	}
	if _, err := os.Stat(p.sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left behind after a clean shutdown: %v", err)
	}
}
