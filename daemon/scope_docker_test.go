package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	dclient "github.com/moby/moby/client"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/client"
	"github.com/bot-bottle/bottlecap/daemon"
	"github.com/bot-bottle/bottlecap/daemon/daemontest"
	"github.com/bot-bottle/bottlecap/enforcement"
	"github.com/bot-bottle/bottlecap/enforcement/dockerlab"
	"github.com/bot-bottle/bottlecap/enforcement/dockertest"
	"github.com/bot-bottle/bottlecap/internal/testutil"
)

// TestUserDaemonLeavesTestContainersAlone is issue 15's "`make test`
// registers its test containers in a live daemon's ledger for ever", on
// the real engine. Beside the test's own daemon runs a stand-in for a
// user's: a real daemon on a home of its own, with Docker discovery on and
// no daemon id, as `bottlecap serve` runs by default. The test makes two
// bottles as every real-engine test does (dockertest labels them with the
// test's daemon id): one before the user's daemon starts (its first
// listing sees it), one while both watch (their events do). The test's
// daemon registers both with their label budgets and, once a report
// crosses one, cuts it off on the engine. The user's daemon, which has
// seen every event up to a later container, registers neither, journals
// no action and makes no engine call that changes anything.
func TestUserDaemonLeavesTestContainersAlone(t *testing.T) {
	cli := dockertest.Engine(t)
	ctx := context.Background()
	early := newScopeBottle(t, cli)
	eng := &standIn{Engine: cli, taken: map[string]bool{}}
	user := startUserDaemon(t, eng)
	own := daemontest.Start(t, daemontest.Options{Engine: cli, Discover: true})
	late := newScopeBottle(t, cli)
	marker := dockertest.RunContainer(t, cli, container.Config{Image: dockertest.Image(t, cli), Cmd: []string{"sleep"}},
		container.HostConfig{}, "bottlecap-scope-marker-"+dockerlab.RandHex(), "bridge", "")

	for _, b := range []*scopeBottle{early, late} {
		testutil.Eventually(t, "the test's daemon registers "+b.slug+" with its label budget", func() bool {
			got, err := own.Client.Bottle(ctx, b.slug)
			return err == nil && got.LabelBudget["claude"].String() == "1000" && slices.Contains(got.Containers, b.agent)
		})
	}
	testutil.Eventually(t, "the user's daemon takes the marker's start event (it has handled every one before)", func() bool {
		return eng.took(marker)
	})
	r := api.Report{Report: budget.Report{ID: "cross-" + early.slug, Bottle: early.slug, Provider: "claude", Usage: budget.Usage{Input: 1001}}}
	if _, err := own.Client.Ingest(ctx, []api.Report{r}); err != nil {
		t.Fatal(err)
	}
	if acts := waitDone(t, own.Client, early.slug, 1); acts[0].Kind != string(budget.ActCutoff) {
		t.Fatalf("the test's daemon journaled %+v, want its cutoff", acts)
	}
	if got, want := early.networks(t, cli), []string{early.internal}; !slices.Equal(got, want) {
		t.Errorf("after the test's cutoff its agent is on %v, want only %v", got, want)
	}
	checkUntouched(t, user, eng, early.slug, late.slug)
}

// checkUntouched asserts that the user's daemon knows none of the bottles,
// in its book or its ledger, and never acted.
func checkUntouched(t *testing.T, user *client.Client, eng *standIn, slugs ...string) {
	t.Helper()
	ctx := context.Background()
	for _, slug := range slugs {
		if b, err := user.Bottle(ctx, slug); !errors.Is(err, budget.ErrNotFound) {
			t.Errorf("the user's daemon has the test's bottle %s: %+v (%v)", slug, b, err)
		}
		if audit, err := user.Audit(ctx, client.AuditQuery{Bottle: slug}); err != nil || len(audit) > 0 {
			t.Errorf("the user's audit log of %s: %+v (%v), want nothing", slug, audit, err)
		}
	}
	if acts, err := user.Actions(ctx, ""); err != nil || len(acts) > 0 {
		t.Errorf("the user's daemon journaled %+v (%v), want no action", acts, err)
	}
	if calls := eng.changes(); len(calls) > 0 {
		t.Errorf("the user's daemon asked the engine for %q, want nothing changed", calls)
	}
}

// scopeBottle is a bottle as the real-engine tests make it: an agent
// container of project bot-bottle-<slug> on an internal and an egress
// network, with a label budget of 1k claude tokens.
type scopeBottle struct {
	slug, internal, agent string
}

func newScopeBottle(t *testing.T, cli *dclient.Client) *scopeBottle {
	t.Helper()
	b := &scopeBottle{slug: "scope-" + dockerlab.RandHex()}
	project := enforcement.ProjectPrefix + b.slug
	b.internal = project + "_internal"
	labels := map[string]string{enforcement.LabelProject: project}
	dockertest.CreateNetwork(t, cli, b.internal, true, labels)
	dockertest.CreateNetwork(t, cli, project+"_egress", false, labels)
	labels[enforcement.LabelBudget] = "claude=1k"
	b.agent = dockertest.RunContainer(t, cli, container.Config{Image: dockertest.Image(t, cli), Cmd: []string{"sleep"}, Labels: labels},
		container.HostConfig{}, project, b.internal, "agent", dockertest.ConnectTo{Network: project + "_egress", Alias: "agent"})
	return b
}

// networks lists the networks the agent is on.
func (b *scopeBottle) networks(t *testing.T, cli *dclient.Client) []string {
	t.Helper()
	var out []string
	for name := range dockertest.Inspect(t, cli, b.agent).NetworkSettings.Networks {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// startUserDaemon runs the stand-in for a user's daemon until the test
// ends: assembled as `bottlecap serve` assembles it, with discovery on and
// no daemon id, over eng. It registers what it finds of the user's own
// containers on this engine, if there are any, in a ledger thrown away
// after the test; it has no budget that could cross, nothing reports to
// it, and eng refuses any change anyway.
func startUserDaemon(t *testing.T, eng *standIn) *client.Client {
	t.Helper()
	home, err := os.MkdirTemp("", "bcu") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(home) })
	sock := filepath.Join(home, "run", "bottlecap.sock")
	d, err := daemon.Start(context.Background(), daemon.Config{Socket: sock, DBPath: filepath.Join(home, "bot-bottle.db"), Home: home,
		Settings: budget.DefaultSettings(), Engine: eng, Discover: true, Version: "user"})
	if err != nil {
		t.Fatal(err)
	}
	c := client.New(sock, client.WithRetry(0))
	t.Cleanup(func() {
		c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := d.Stop(ctx); err != nil {
			t.Errorf("stop the user's daemon: %v", err)
		}
	})
	return c
}

// standIn is the engine as the user's daemon reaches it: reads go through;
// every call that would change a container or a network is recorded and
// refused. It also notes which containers' events the daemon's watch has
// taken: it takes them one at a time and handles each before the next.
type standIn struct {
	enforcement.Engine
	mu    sync.Mutex
	calls []string
	taken map[string]bool
}

var errStandIn = errors.New("the stand-in for a user's daemon changes nothing on the engine")

func (s *standIn) change(format string, args ...any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, fmt.Sprintf(format, args...))
	return errStandIn
}

func (s *standIn) changes() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

func (s *standIn) took(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.taken[id]
}

// Events hands the engine's events on one at a time, noting each once the
// watch has taken it.
func (s *standIn) Events(ctx context.Context, o dclient.EventsListOptions) dclient.EventsResult {
	in := s.Engine.Events(ctx, o)
	msgs, errs := make(chan events.Message), make(chan error, 1)
	go func() {
		for {
			select {
			case m := <-in.Messages:
				select {
				case msgs <- m:
					s.mu.Lock()
					s.taken[m.Actor.ID] = true
					s.mu.Unlock()
				case <-ctx.Done():
					return
				}
			case err := <-in.Err:
				errs <- err
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return dclient.EventsResult{Messages: msgs, Err: errs}
}

func (s *standIn) ContainerKill(_ context.Context, id string, _ dclient.ContainerKillOptions) (dclient.ContainerKillResult, error) {
	return dclient.ContainerKillResult{}, s.change("kill %s", id)
}

func (s *standIn) ContainerCommit(_ context.Context, id string, _ dclient.ContainerCommitOptions) (dclient.ContainerCommitResult, error) {
	return dclient.ContainerCommitResult{}, s.change("commit %s", id)
}

func (s *standIn) ContainerStop(_ context.Context, id string, _ dclient.ContainerStopOptions) (dclient.ContainerStopResult, error) {
	return dclient.ContainerStopResult{}, s.change("stop %s", id)
}

func (s *standIn) ContainerRemove(_ context.Context, id string, _ dclient.ContainerRemoveOptions) (dclient.ContainerRemoveResult, error) {
	return dclient.ContainerRemoveResult{}, s.change("remove %s", id)
}

func (s *standIn) ContainerPause(_ context.Context, id string, _ dclient.ContainerPauseOptions) (dclient.ContainerPauseResult, error) {
	return dclient.ContainerPauseResult{}, s.change("pause %s", id)
}

func (s *standIn) ContainerUnpause(_ context.Context, id string, _ dclient.ContainerUnpauseOptions) (dclient.ContainerUnpauseResult, error) {
	return dclient.ContainerUnpauseResult{}, s.change("unpause %s", id)
}

func (s *standIn) NetworkConnect(_ context.Context, id string, o dclient.NetworkConnectOptions) (dclient.NetworkConnectResult, error) {
	return dclient.NetworkConnectResult{}, s.change("connect %s to %s", o.Container, id)
}

func (s *standIn) NetworkDisconnect(_ context.Context, id string, o dclient.NetworkDisconnectOptions) (dclient.NetworkDisconnectResult, error) {
	return dclient.NetworkDisconnectResult{}, s.change("disconnect %s from %s", o.Container, id)
}

func (s *standIn) NetworkRemove(_ context.Context, id string, _ dclient.NetworkRemoveOptions) (dclient.NetworkRemoveResult, error) {
	return dclient.NetworkRemoveResult{}, s.change("remove network %s", id)
}
