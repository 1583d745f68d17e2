package daemon_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	dclient "github.com/moby/moby/client"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/client"
	"github.com/bot-bottle/bottlecap/daemon/daemontest"
	"github.com/bot-bottle/bottlecap/enforcement"
	"github.com/bot-bottle/bottlecap/enforcement/dockerlab"
	"github.com/bot-bottle/bottlecap/enforcement/dockertest"
	"github.com/bot-bottle/bottlecap/internal/pgtest"
	"github.com/bot-bottle/bottlecap/internal/testutil"
)

// The tests against the real engine share one image (package dockertest),
// removed here, and the fleet's tests one Postgres (package pgtest),
// stopped here.
func TestMain(m *testing.M) {
	code := pgtest.Main(m)
	if err := dockertest.Cleanup(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

// pauseBottle is a bottle on the real engine as Compose makes it: an
// agent container and a sidecars container, both of project
// bot-bottle-<slug>, on the project's internal network.
type pauseBottle struct {
	slug           string
	agent, sidecar string // container ids
}

func newPauseBottle(t *testing.T, cli *dclient.Client) *pauseBottle {
	t.Helper()
	b := &pauseBottle{slug: "rate-" + dockerlab.RandHex()}
	project := enforcement.ProjectPrefix + b.slug
	labels := map[string]string{enforcement.LabelProject: project}
	dockertest.CreateNetwork(t, cli, project+"_internal", true, labels)
	img := dockertest.Image(t, cli)
	b.agent = dockertest.RunContainer(t, cli, container.Config{Image: img, Cmd: []string{"sleep"}, Labels: labels},
		container.HostConfig{}, project, project+"_internal", "agent")
	side := map[string]string{enforcement.LabelProject: project, enforcement.LabelComposeService: "sidecars"}
	b.sidecar = dockertest.RunContainer(t, cli, container.Config{Image: img, Cmd: []string{"sleep"}, Labels: side},
		container.HostConfig{}, project+"-sidecars-1", project+"_internal", "egress")
	return b
}

// engineStates is "agent <state>, sidecar <state>" as docker inspect
// shows them.
func (b *pauseBottle) engineStates(t *testing.T, cli *dclient.Client) string {
	t.Helper()
	return fmt.Sprintf("agent %s, sidecar %s", dockertest.Inspect(t, cli, b.agent).State.Status, dockertest.Inspect(t, cli, b.sidecar).State.Status)
}

// waitEngine waits until the engine shows the bottle's containers so.
func (b *pauseBottle) waitEngine(t *testing.T, cli *dclient.Client, want string) {
	t.Helper()
	testutil.Until(t, testutil.Within, want, func() string {
		if got := b.engineStates(t, cli); got != want {
			return got
		}
		return ""
	})
}

// waitDone waits until the journal holds n done actions of the bottle and
// returns them, oldest first.
func waitDone(t *testing.T, c *client.Client, slug string, n int) []api.Action {
	t.Helper()
	var mine []api.Action
	testutil.Until(t, testutil.Within, fmt.Sprintf("%d done actions of %s", n, slug), func() string {
		acts, err := c.Actions(context.Background(), "done")
		if err != nil {
			return err.Error()
		}
		mine = slices.DeleteFunc(acts, func(a api.Action) bool { return a.Bottle != slug })
		if len(mine) < n {
			return fmt.Sprintf("%d done: %+v", len(mine), mine)
		}
		return ""
	})
	return mine
}

// TestRateGuardPausesAgentNotSidecarOnTheEngine runs the daemon on the
// real engine with a claude rate guard of 1000 tokens a minute and a test
// clock. A burst of reports trips the guard: docker inspect shows the
// agent container paused and the sidecar running. Once the clock has
// moved two minutes on (the burst leaves the window after one, then a
// quiet minute) the guard lifts its pause: the agent runs again. An
// operator's pause is paused the same way, outlasts any quiet, and is
// undone by restore.
func TestRateGuardPausesAgentNotSidecarOnTheEngine(t *testing.T) {
	cli := dockertest.Engine(t)
	b := newPauseBottle(t, cli)
	s := budget.DefaultSettings()
	s.Rate = budget.Rates{"claude": 1000}
	clk := testutil.NewClock(time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC))
	d := daemontest.Start(t, daemontest.Options{Settings: s, Engine: cli, Clock: clk})
	ctx := context.Background()
	if _, err := d.Client.PutBottle(ctx, b.slug, api.BottleRequest{Agent: "implementer"}); err != nil {
		t.Fatal(err)
	}
	b.waitEngine(t, cli, "agent running, sidecar running")

	burst := time.Now()
	for i := range 3 {
		r := api.Report{Report: budget.Report{ID: fmt.Sprintf("burst-%d", i), Bottle: b.slug, Provider: "claude", Usage: budget.Usage{Input: 400}}}
		if _, err := d.Client.Ingest(ctx, []api.Report{r}); err != nil {
			t.Fatal(err)
		}
	}
	if acts := waitDone(t, d.Client, b.slug, 1); acts[0].Kind != "pause" || acts[0].Operator {
		t.Fatalf("journal %+v, want the rate guard's pause", acts)
	}
	b.waitEngine(t, cli, "agent paused, sidecar running")
	t.Logf("from the burst to the agent paused on the engine: %v", time.Since(burst))
	v, err := d.Client.Verdict(ctx, client.VerdictQuery{Bottle: b.slug, Provider: "claude"})
	if err != nil || v.Allowed || v.State != budget.Paused || !strings.Contains(v.Reason, "rate guard: 1,200 claude tokens in the last minute, over 1k/min") {
		t.Errorf("verdict %+v (%v), want denied, paused, naming the rate", v, err)
	}

	lift := time.Now()
	clk.Advance(2 * budget.RateSpan)
	if acts := waitDone(t, d.Client, b.slug, 2); acts[1].Kind != "restore" || acts[1].Operator {
		t.Fatalf("journal %+v, want the guard's restore after a quiet minute", acts)
	}
	b.waitEngine(t, cli, "agent running, sidecar running")
	t.Logf("from the quiet minute's end to the agent running again: %v", time.Since(lift))

	if _, err := d.Client.Act(ctx, b.slug, api.ActionRequest{Action: "pause", Reason: "operator looks"}); err != nil {
		t.Fatal(err)
	}
	waitDone(t, d.Client, b.slug, 3)
	b.waitEngine(t, cli, "agent paused, sidecar running")
	clk.Advance(time.Hour) // a lift would be journaled within Advance
	all, err := d.Client.Actions(ctx, "")
	if mine := slices.DeleteFunc(all, func(a api.Action) bool { return a.Bottle != b.slug }); err != nil || len(mine) != 3 {
		t.Errorf("an hour after an operator's pause the journal holds %+v (%v), want nothing more", mine, err)
	}
	if got := b.engineStates(t, cli); got != "agent paused, sidecar running" {
		t.Errorf("an hour after an operator's pause: %s, want it still paused", got)
	}
	if _, err := d.Client.Act(ctx, b.slug, api.ActionRequest{Action: "restore"}); err != nil {
		t.Fatal(err)
	}
	waitDone(t, d.Client, b.slug, 4)
	b.waitEngine(t, cli, "agent running, sidecar running")
}
