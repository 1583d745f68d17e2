package main

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/client"
	"github.com/bot-bottle/bottlecap/enforcement/dockertest"
	"github.com/bot-bottle/bottlecap/internal/testutil"
)

// engineSocket is where the engine listens: DOCKER_HOST's unix socket, or
// the default one. An engine over TCP cannot be proxied here: skip.
func engineSocket(t *testing.T) string {
	t.Helper()
	host := os.Getenv("DOCKER_HOST")
	if host == "" {
		return "/var/run/docker.sock"
	}
	if path, ok := strings.CutPrefix(host, "unix://"); ok {
		return path
	}
	t.Skipf("the engine proxy forwards a unix socket; DOCKER_HOST is %s", host)
	return ""
}

// engineProxy forwards a unix socket to the engine's, so that a test can
// take the engine away from the daemon and give it back on the same path.
type engineProxy struct {
	t    *testing.T
	path string
	to   string // the engine's socket
	mu   sync.Mutex
	l    net.Listener
	open map[net.Conn]bool
	wg   sync.WaitGroup
}

// newEngineProxy starts a proxy; DOCKER_HOST=unix://<path> reaches the
// engine through it while it is up.
func newEngineProxy(t *testing.T) *engineProxy {
	t.Helper()
	to := engineSocket(t)
	dir, err := os.MkdirTemp("", "bcp")
	if err != nil {
		t.Fatal(err)
	}
	p := &engineProxy{t: t, path: filepath.Join(dir, "docker.sock"), to: to, open: map[net.Conn]bool{}}
	t.Cleanup(func() { p.stop(); os.RemoveAll(dir) })
	p.start()
	return p
}

func (p *engineProxy) host() string { return "unix://" + p.path }

// start listens again on the same path.
func (p *engineProxy) start() {
	p.t.Helper()
	l, err := net.Listen("unix", p.path)
	if err != nil {
		p.t.Fatalf("engine proxy: %v", err)
	}
	p.mu.Lock()
	p.l = l
	p.mu.Unlock()
	p.wg.Add(1)
	go p.accept(l)
}

// stop closes the listener (removing the socket file) and every forwarded
// connection, as an engine going away would.
func (p *engineProxy) stop() {
	p.mu.Lock()
	if p.l != nil {
		p.l.Close()
		p.l = nil
	}
	for c := range p.open {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *engineProxy) accept(l net.Listener) {
	defer p.wg.Done()
	for {
		c, err := l.Accept()
		if err != nil {
			return // stopped
		}
		up, err := net.Dial("unix", p.to)
		if err != nil {
			c.Close()
			continue
		}
		if !p.track(c, up) {
			return
		}
		p.wg.Add(2)
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

// track records a forwarded pair; false when the proxy stopped meanwhile.
func (p *engineProxy) track(c, up net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.l == nil {
		c.Close()
		up.Close()
		return false
	}
	p.open[c], p.open[up] = true, true
	return true
}

// pipe copies one way, then closes both ends so the other copy ends too.
func (p *engineProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	io.Copy(dst, src)
	dst.Close()
	src.Close()
	p.mu.Lock()
	delete(p.open, dst)
	delete(p.open, src)
	p.mu.Unlock()
}

// crossWhileEngineDown registers the bottle, takes the engine away and
// crosses the budget: the cutoff must stay pending, retried, with the
// container untouched. It returns the pending action.
func crossWhileEngineDown(t *testing.T, px *engineProxy, p *proc, b *e2eBottle) api.Action {
	t.Helper()
	c := client.New(p.sock)
	defer c.Close()
	if _, err := c.PutBottle(context.Background(), b.slug, api.BottleRequest{Budget: budget.Limits{"claude": budget.Lifetime(1000)}}); err != nil {
		t.Fatalf("register: %v", err)
	}
	px.stop()
	ingest(t, c, b.slug, "r1", 1500)
	act := waitAttempts(t, c, b.slug, 3)
	if v := verdict(t, c, b.slug); v.Allowed {
		t.Errorf("gate while the cutoff is pending: got allowed, want denied: %+v", v)
	}
	return act
}

// waitAttempts waits until the bottle's pending action has been tried at
// least n times, with the engine's error journaled.
func waitAttempts(t *testing.T, c *client.Client, slug string, n int) api.Action {
	t.Helper()
	var act api.Action
	testutil.Eventually(t, "pending action retried", func() bool {
		act = waitAction(t, c, slug, "pending")
		return act.Attempts >= n && act.LastError != ""
	})
	return act
}

// TestDockerActionWaitsForEngine: with the engine unreachable the cutoff
// stays pending and is retried; it completes once the engine is back.
func TestDockerActionWaitsForEngine(t *testing.T) {
	cli := dockertest.Engine(t)
	b := newE2EBottle(t, cli, nil)
	px := newEngineProxy(t)
	p := startDockerServe(t, newHome(t), px.host())
	crossWhileEngineDown(t, px, p, b)
	if got := b.networks(t, cli); !slices.Contains(got, b.egress) {
		t.Fatalf("with the engine down the container left %s anyway: %v", b.egress, got)
	}
	px.start()
	c := client.New(p.sock)
	defer c.Close()
	checkCutOff(t, cli, c, b)
}

// TestDockerActionResumedAfterRestart: the daemon dies while the cutoff
// waits for the engine; the restarted daemon resumes it, keeps counting
// attempts, and completes it once the engine is back.
func TestDockerActionResumedAfterRestart(t *testing.T) {
	cli := dockertest.Engine(t)
	b := newE2EBottle(t, cli, nil)
	px := newEngineProxy(t)
	home := newHome(t)
	p := startDockerServe(t, home, px.host())
	before := crossWhileEngineDown(t, px, p, b)
	p.kill()
	p = startDockerServe(t, home, px.host())
	c := client.New(p.sock)
	defer c.Close()
	var after api.Action
	testutil.Eventually(t, "resumed action tried again", func() bool {
		after = waitAction(t, c, b.slug, "pending")
		return after.UpdatedAt.After(before.UpdatedAt)
	})
	if after.ID != before.ID || after.Attempts <= before.Attempts {
		t.Errorf("after the restart got action #%d with %d attempts, want #%d with more than %d", after.ID, after.Attempts, before.ID, before.Attempts)
	}
	px.start()
	checkCutOff(t, cli, c, b)
}
