package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	dclient "github.com/moby/moby/client"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/client"
	"github.com/bot-bottle/bottlecap/enforcement"
	"github.com/bot-bottle/bottlecap/enforcement/dockerlab"
	"github.com/bot-bottle/bottlecap/enforcement/dockertest"
	"github.com/bot-bottle/bottlecap/internal/testutil"
)

// TestDockerSidecarReportsOnlyForItsBottle runs a sidecar container of a
// bottle with the daemon's run/ directory bind-mounted, as bot-bottle
// does: over the socket it may report for its own bottle (200) but not for
// another one (403). The daemon finds the container from the peer's cgroup
// and its bottle from the container's labels.
func TestDockerSidecarReportsOnlyForItsBottle(t *testing.T) {
	cli := dockertest.Engine(t)
	home := newHome(t)
	p := startDockerServe(t, home, "")
	slug, sidecar := runSidecar(t, cli, home)
	tests := []struct {
		name, bottle, want string
	}{
		{"another bottle", "other-" + dockerlab.RandHex(), "403"},
		{"its own bottle", slug, "200"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, code := dockertest.Exec(t, cli, sidecar, "/prog", "report", "/run/bottlecap/bottlecap.sock", tt.bottle, fmt.Sprintf("peer-%d", i))
			if code != 0 || out != tt.want {
				t.Errorf("report for %s from the sidecar: got %q (exit %d), want %s", tt.bottle, out, code, tt.want)
			}
		})
	}
	c := client.New(p.sock)
	defer c.Close()
	if v := verdict(t, c, slug); v.Used != 1 {
		t.Errorf("the sidecar's own report: got %d tokens counted, want 1", v.Used)
	}
	if _, err := c.Bottle(context.Background(), tests[0].bottle); !errors.Is(err, budget.ErrNotFound) {
		t.Errorf("the refused report's bottle: got %v, want it never registered (not found)", err)
	}
}

// runSidecar runs a bottle's sidecar container with the daemon's run/
// directory bind-mounted, as bot-bottle does, and returns the bottle's
// slug and the container.
func runSidecar(t *testing.T, cli *dclient.Client, home string) (slug, id string) {
	t.Helper()
	slug = "e2e-" + dockerlab.RandHex()
	project := enforcement.ProjectPrefix + slug
	labels := map[string]string{enforcement.LabelProject: project}
	net := project + "_internal"
	dockertest.CreateNetwork(t, cli, net, true, labels)
	cfg := container.Config{Image: dockertest.Image(t, cli), Cmd: []string{"sleep"}, Labels: labels}
	host := container.HostConfig{Mounts: []mount.Mount{{Type: mount.TypeBind, Source: home + "/run", Target: "/run/bottlecap"}}}
	return slug, dockertest.RunContainer(t, cli, cfg, host, project+"-egress-1", net, "egress")
}

// TestDockerSidecarAllowancesOnlyForItsBottle: a sidecar may hold
// allowances for its own bottle and watch its events, and may neither
// open, extend nor release another bottle's allowances, nor watch another
// bottle's events or every event (403 each, nothing changed).
func TestDockerSidecarAllowancesOnlyForItsBottle(t *testing.T) {
	cli := dockertest.Engine(t)
	home := newHome(t)
	p := startDockerServe(t, home, "")
	c := client.New(p.sock)
	defer c.Close()
	own, sidecar := runSidecar(t, cli, home)
	other := "other-" + dockerlab.RandHex()
	if _, err := c.PutBottle(context.Background(), other, api.BottleRequest{}); err != nil {
		t.Fatalf("register %s: %v", other, err)
	}
	theirs, err := c.Allow(context.Background(), api.AllowanceRequest{Bottle: other, Provider: "claude", Tokens: 70})
	if err != nil {
		t.Fatalf("the host's allowance for %s: %v", other, err)
	}
	out, code := dockertest.Exec(t, cli, sidecar, "/prog", "request", "/run/bottlecap/bottlecap.sock",
		"POST", "/v1/allowances", `{"bottle":"`+other+`","provider":"claude","tokens":5}`,
		"POST", "/v1/allowances", `{"id":"`+theirs.ID+`","tokens":5}`,
		"DELETE", "/v1/allowances/"+theirs.ID, ``,
		"GET", "/v1/events?bottle="+other, ``,
		"GET", "/v1/events", ``,
		"POST", "/v1/allowances", `{"bottle":"`+own+`","provider":"claude","tokens":10}`,
		"GET", "/v1/events?bottle="+own, ``)
	if want := "403 403 403 403 403 200 200"; code != 0 || out != want {
		t.Errorf("from the sidecar: open, extend and release for %s, watch %s and everything, open and watch its own: got %q (exit %d), want %s",
			other, other, out, code, want)
	}
	if v := verdict(t, c, other); v.Held != 70 {
		t.Errorf("%s holds %d after the refused requests, want its 70", other, v.Held)
	}
	if v := verdict(t, c, own); v.Held != 10 {
		t.Errorf("%s holds %d, want the sidecar's 10", own, v.Held)
	}
}

// TestDockerReapedContainerPeerGetsNoPower is the container race of the
// hardening issue made deterministic. A root process in a bottle's
// container opens connections from a child that hands them over and
// exits; while the daemon is stopped (SIGSTOP), so that it accepts them
// only after the child is reaped and its /proc entry is gone. The daemon
// once took such a peer for a host root process, so an operator. Over
// those connections an operator action on another bottle, raising the
// container's own budget and a report for another bottle must each be 403,
// and none may have changed anything.
func TestDockerReapedContainerPeerGetsNoPower(t *testing.T) {
	cli := dockertest.Engine(t)
	home := newHome(t)
	p := startDockerServe(t, home, "")
	c := client.New(p.sock)
	defer c.Close()
	own, other := "mine-"+dockerlab.RandHex(), "other-"+dockerlab.RandHex()
	if _, err := c.PutBottle(context.Background(), other, api.BottleRequest{Budget: budget.Limits{"claude": budget.Lifetime(1000)}}); err != nil {
		t.Fatalf("register %s: %v", other, err)
	}
	labels := map[string]string{enforcement.LabelBottle: own, enforcement.LabelBudget: "claude=1k"}
	net := "bottlecap-race-" + dockerlab.RandHex()
	dockertest.CreateNetwork(t, cli, net, true, nil)
	cfg := container.Config{Image: dockertest.Image(t, cli), Cmd: []string{"sleep"}, Labels: labels}
	host := container.HostConfig{Mounts: []mount.Mount{{Type: mount.TypeBind, Source: home + "/run", Target: "/run/bottlecap"}}}
	ctr := dockertest.RunContainer(t, cli, cfg, host, net+"-sidecar", net, "")
	testutil.Eventually(t, "the labelled container's bottle discovered", func() bool {
		b, err := c.Bottle(context.Background(), own)
		return err == nil && slices.Contains(b.Containers, ctr)
	})

	stopped := pauseDaemon(t, p)
	marker := "orphaned-" + dockerlab.RandHex()
	go func() {
		// Resume the daemon once the connecting child is reaped (or give up
		// waiting): from then on its connections wait in the backlog.
		defer stopped.resume()
		deadline := time.Now().Add(within)
		for time.Now().Before(deadline) {
			if _, err := os.Stat(filepath.Join(home, "run", marker)); err == nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	out, code := dockertest.Exec(t, cli, ctr, "/prog", "orphan", "/run/bottlecap/bottlecap.sock", "/run/bottlecap/"+marker,
		"POST", "/v1/bottles/"+other+"/actions", `{"action":"cutoff","reason":"race"}`,
		"PUT", "/v1/budgets/bottle/"+own, `{"claude":999999999}`,
		"POST", "/v1/usage", `{"id":"race-1","bottle":"`+other+`","provider":"claude","input_tokens":5,"complete":true}`)
	if code != 0 || out != "403 403 403" {
		t.Errorf("cutoff of another bottle, own budget raised, report for another bottle: got %q (exit %d), want 403 403 403", out, code)
	}
	if log := p.stderr.String(); !strings.Contains(log, "exited before its origin could be established") {
		t.Errorf("the daemon never met a peer that had exited: the race was not reproduced\n%s", log)
	}
	checkNothingChanged(t, c, own, other)
}

// checkNothingChanged asserts that the refused requests left both bottles
// as they were.
func checkNothingChanged(t *testing.T, c *client.Client, own, other string) {
	t.Helper()
	if b, err := c.Bottle(context.Background(), other); err != nil || b.State != budget.Active {
		t.Errorf("%s after a refused cutoff: got %+v, %v; want active", other, b.State, err)
	}
	if acts, err := c.Actions(context.Background(), ""); err != nil || len(acts) != 0 {
		t.Errorf("actions after a refused cutoff: got %+v, %v; want none", acts, err)
	}
	if v := verdict(t, c, own); v.Limit != 1000 {
		t.Errorf("%s's budget after a refused raise: got a limit of %d, want its label's 1000", own, v.Limit)
	}
	if v := verdict(t, c, other); v.Used != 0 {
		t.Errorf("%s after a refused report: got %d tokens counted, want 0", other, v.Used)
	}
}

// stoppedDaemon is a daemon process held with SIGSTOP.
type stoppedDaemon struct {
	p    *proc
	once sync.Once
}

// pauseDaemon stops the daemon process; it is resumed by resume or, at the
// latest, when the test ends.
func pauseDaemon(t *testing.T, p *proc) *stoppedDaemon {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatalf("stop the daemon: %v", err)
	}
	s := &stoppedDaemon{p: p}
	t.Cleanup(s.resume)
	return s
}

func (s *stoppedDaemon) resume() {
	s.once.Do(func() { s.p.cmd.Process.Signal(syscall.SIGCONT) })
}
