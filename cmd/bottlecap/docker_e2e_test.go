package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	dclient "github.com/moby/moby/client"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/client"
	"github.com/bot-bottle/bottlecap/enforcement"
	"github.com/bot-bottle/bottlecap/enforcement/dockerlab"
	"github.com/bot-bottle/bottlecap/enforcement/dockertest"
	"github.com/bot-bottle/bottlecap/internal/pgtest"
	"github.com/bot-bottle/bottlecap/internal/testutil"
)

// The end-to-end tests run the real `bottlecap serve` against the real
// engine and a real Postgres. They share one test image (package
// dockertest) and one Postgres server (package pgtest), removed here.
// No command the tests run, in-process or as a child, can fall back on a
// user's home or socket (testutil.RunIsolated).
func TestMain(m *testing.M) {
	code := testutil.RunIsolated(m)
	if err := dockertest.Cleanup(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	if err := pgtest.Cleanup(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

// within bounds every wait for the daemon or the engine to get somewhere.
const within = 30 * time.Second

// startDockerServe runs `bottlecap serve` enforcing through the engine at
// dockerHost ("" = the environment's), with the test's daemon id (it takes
// what the test made and nothing else), and waits until it answers.
func startDockerServe(t *testing.T, home, dockerHost string) *proc {
	t.Helper()
	p := &proc{t: t, home: home, sock: filepath.Join(home, "run", "bottlecap.sock"), stderr: &syncBuffer{}, exited: make(chan error, 1)}
	p.cmd = exec.Command(bottlecapBinary(t), "serve", "--docker", "--log-level", "debug", "--daemon-id", dockertest.DaemonID(t))
	p.cmd.Env = append(os.Environ(), "BOT_BOTTLE_HOME="+home, "BOTTLECAP_SOCKET=")
	if dockerHost != "" {
		p.cmd.Env = append(p.cmd.Env, "DOCKER_HOST="+dockerHost)
	}
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("daemon log:\n%s", p.stderr.String())
		}
	})
	c := client.New(p.sock, client.WithRetry(20*time.Second))
	defer c.Close()
	if _, err := c.Status(context.Background()); err != nil {
		t.Fatalf("daemon did not come up: %v\n%s", err, p.stderr.String())
	}
	return p
}

// e2eBottle is a bottle on the real engine as Compose would make it: an
// agent container of project bot-bottle-<slug> on an internal network and
// on an egress network that reaches outside.
type e2eBottle struct {
	slug, project    string
	internal, egress string // network names
	agent            string // container id
}

// newE2EBottle creates the bottle; extra labels go on its container.
func newE2EBottle(t *testing.T, cli *dclient.Client, extra map[string]string) *e2eBottle {
	t.Helper()
	b := &e2eBottle{slug: "e2e-" + dockerlab.RandHex()}
	b.project = enforcement.ProjectPrefix + b.slug
	b.internal, b.egress = b.project+"_internal", b.project+"_egress"
	labels := map[string]string{enforcement.LabelProject: b.project}
	dockertest.CreateNetwork(t, cli, b.internal, true, labels)
	dockertest.CreateNetwork(t, cli, b.egress, false, labels)
	for k, v := range extra {
		labels[k] = v
	}
	cfg := container.Config{Image: dockertest.Image(t, cli), Cmd: []string{"sleep"}, Labels: labels}
	b.agent = dockertest.RunContainer(t, cli, cfg, container.HostConfig{}, b.project, b.internal, "agent",
		dockertest.ConnectTo{Network: b.egress, Alias: "agent"})
	return b
}

// networks lists the networks the agent container is attached to.
func (b *e2eBottle) networks(t *testing.T, cli *dclient.Client) []string {
	t.Helper()
	var out []string
	for name := range dockertest.Inspect(t, cli, b.agent).NetworkSettings.Networks {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// checkCutOff waits for the bottle's cutoff to be done in the journal and
// checks it everywhere: the container, the audit log and the gate.
func checkCutOff(t *testing.T, cli *dclient.Client, c *client.Client, b *e2eBottle) {
	t.Helper()
	act := waitAction(t, c, b.slug, "done")
	if act.Kind != string(budget.ActCutoff) || act.Operator {
		t.Errorf("got action %s (operator %v), want a budget cutoff", act.Kind, act.Operator)
	}
	if got, want := b.networks(t, cli), []string{b.internal}; !slices.Equal(got, want) {
		t.Errorf("after the cutoff the container is on %v, want only the internal %v", got, want)
	}
	checkAudit(t, c, b.slug, "action_pending", "action_done")
	v := verdict(t, c, b.slug)
	if v.Allowed || v.State != budget.CutOff {
		t.Errorf("gate after the cutoff: got allowed %v state %s, want denied, cut_off", v.Allowed, v.State)
	}
}

// waitAction waits until the bottle has an action with that status.
func waitAction(t *testing.T, c *client.Client, slug, status string) api.Action {
	t.Helper()
	var found api.Action
	testutil.Eventually(t, "action of "+slug+" "+status, func() bool {
		acts, err := c.Actions(context.Background(), status)
		if err != nil {
			return false
		}
		i := slices.IndexFunc(acts, func(a api.Action) bool { return a.Bottle == slug })
		if i >= 0 {
			found = acts[i]
		}
		return i >= 0
	})
	return found
}

// checkAudit waits until the bottle's audit trail has every kind: an
// action's outcome is journaled before the bottle's state and its audit
// entry are written, so a test that saw "done" in the journal may look a
// moment too early.
func checkAudit(t *testing.T, c *client.Client, slug string, kinds ...string) {
	t.Helper()
	testutil.Until(t, within, "audit of "+slug, func() string {
		entries, err := c.Audit(context.Background(), client.AuditQuery{Bottle: slug})
		if err != nil {
			return err.Error()
		}
		for _, k := range kinds {
			if !slices.ContainsFunc(entries, func(e api.AuditEntry) bool { return e.Kind == k }) {
				return fmt.Sprintf("no %s entry in %+v", k, entries)
			}
		}
		return ""
	})
}

func verdict(t *testing.T, c *client.Client, slug string) budget.Verdict {
	t.Helper()
	v, err := c.Verdict(context.Background(), client.VerdictQuery{Bottle: slug, Provider: "claude"})
	if err != nil {
		t.Fatalf("verdict: %v", err)
	}
	return v
}

// ingest sends one claude report of n input tokens for the bottle.
func ingest(t *testing.T, c *client.Client, slug, id string, n int64) api.IngestReply {
	t.Helper()
	r := api.Report{Report: budget.Report{ID: id, Bottle: slug, Provider: "claude", Usage: budget.Usage{Input: n}, Complete: true}}
	reply, err := c.Ingest(context.Background(), []api.Report{r})
	if err != nil {
		t.Fatalf("ingest %s: %v", id, err)
	}
	return reply
}

// TestDockerCutoffWhenBudgetCrossed registers a bottle with a budget over
// the API; the report that crosses it gets the bottle cut off on the
// engine with no further call.
func TestDockerCutoffWhenBudgetCrossed(t *testing.T) {
	cli := dockertest.Engine(t)
	b := newE2EBottle(t, cli, nil)
	p := startDockerServe(t, newHome(t), "")
	c := client.New(p.sock)
	defer c.Close()
	if _, err := c.PutBottle(context.Background(), b.slug, api.BottleRequest{Budget: budget.Limits{"claude": budget.Lifetime(1000)}}); err != nil {
		t.Fatalf("register: %v", err)
	}
	if reply := ingest(t, c, b.slug, "r1", 600); !reply.Verdicts[0].Allowed {
		t.Fatalf("under the budget the gate denies: %+v", reply.Verdicts[0])
	}
	if got, want := b.networks(t, cli), []string{b.egress, b.internal}; !slices.Equal(got, want) {
		t.Fatalf("before the crossing the container is on %v, want %v", got, want)
	}
	ingest(t, c, b.slug, "r2", 600)
	checkCutOff(t, cli, c, b)
}

// TestDockerLabelBudgetDiscovered gives the budget only as a container
// label: discovery registers it and the crossing is enforced the same way.
func TestDockerLabelBudgetDiscovered(t *testing.T) {
	cli := dockertest.Engine(t)
	p := startDockerServe(t, newHome(t), "")
	b := newE2EBottle(t, cli, map[string]string{"bot-bottle.budget": "claude=1k", "bot-bottle.agent": "implementer"})
	c := client.New(p.sock)
	defer c.Close()
	testutil.Eventually(t, "bottle discovered with its label budget", func() bool {
		got, err := c.Bottle(context.Background(), b.slug)
		return err == nil && got.LabelBudget["claude"].String() == "1000" && slices.Contains(got.Containers, b.agent)
	})
	ingest(t, c, b.slug, "r1", 1200)
	checkCutOff(t, cli, c, b)
}
