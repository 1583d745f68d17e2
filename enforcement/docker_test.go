package enforcement_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/enforcement"
)

const routesYAML = "log: /var/log/egress.jsonl\nroutes:\n  - host: api.anthropic.com\n    to: https://api.anthropic.com\n"

// bottleWorld is the bottle "dev1": an agent on the internal network, a
// sidecar on the internal and egress networks with a routes file, and a
// stranger on the egress network that belongs to no bottle.
func bottleWorld(t *testing.T) (*world, string) {
	t.Helper()
	routes := filepath.Join(t.TempDir(), "routes.yaml")
	if err := os.WriteFile(routes, []byte(routesYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	project := map[string]string{enforcement.LabelProject: "bot-bottle-dev1"}
	w := &world{images: map[string]bool{}, nets: map[string]network.Inspect{
		"n-int": {Network: network.Network{ID: "n-int", Name: "bot-bottle-dev1_internal", Internal: true, Labels: project}},
		"n-egr": {Network: network.Network{ID: "n-egr", Name: "bot-bottle-dev1_egress"}},
		"n-oth": {Network: network.Network{ID: "n-oth", Name: "other"}},
	}}
	ep := func(id string, aliases ...string) *network.EndpointSettings {
		return &network.EndpointSettings{NetworkID: id, Aliases: aliases}
	}
	w.ctrs = []*fctr{
		{id: "c-agent", name: "bot-bottle-dev1", labels: project, created: 1, running: true,
			nets: map[string]*network.EndpointSettings{"bot-bottle-dev1_internal": ep("n-int", "agent")}},
		{id: "c-side", name: "bot-bottle-dev1-egress-1", labels: project, created: 2, running: true,
			nets: map[string]*network.EndpointSettings{
				"bot-bottle-dev1_internal": ep("n-int", "egress"),
				"bot-bottle-dev1_egress":   ep("n-egr", "egress", "proxy"),
			},
			mounts: []container.MountPoint{{Type: mount.TypeBind, Source: routes, Destination: enforcement.RoutesPath}}},
		{id: "c-stranger", name: "stranger", created: 3, running: true,
			nets: map[string]*network.EndpointSettings{"other": ep("n-oth")}},
	}
	return w, routes
}

func do(t *testing.T, d *enforcement.Docker, kind budget.ActionKind, ids ...string) {
	t.Helper()
	if err := d.Do(context.Background(), enforcement.Action{Kind: kind, Bottle: "dev1", Containers: ids}); err != nil {
		t.Fatalf("%s: %v", kind, err)
	}
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

func TestCutoffDisconnectsEgressAndEmptiesRoutesInPlace(t *testing.T) {
	w, routes := bottleWorld(t)
	memo := &enforcement.MemMemo{}
	d := enforcement.NewDocker(w.engine(), t.TempDir(), memo)
	ino := inode(t, routes)

	do(t, d, budget.ActCutoff)

	want := []string{"disconnect bot-bottle-dev1-egress-1 bot-bottle-dev1_egress", "kill bot-bottle-dev1-egress-1 HUP"}
	if got := w.calls(); !slices.Equal(got, want) {
		t.Errorf("calls = %q, want %q", got, want)
	}
	b, _ := os.ReadFile(routes)
	if got, want := string(b), "log: /var/log/egress.jsonl\nroutes: []\n"; got != want {
		t.Errorf("routes = %q, want %q", got, want)
	}
	if got := inode(t, routes); got != ino {
		t.Errorf("inode = %d, want %d (rewritten in place)", got, ino)
	}

	do(t, d, budget.ActCutoff) // again: nothing more happens
	if got := w.calls(); len(got) != len(want) {
		t.Errorf("second cutoff made calls %q", got[len(want):])
	}
}

func TestRestoreUndoesCutoff(t *testing.T) {
	w, routes := bottleWorld(t)
	memo := &enforcement.MemMemo{}
	d := enforcement.NewDocker(w.engine(), t.TempDir(), memo)
	do(t, d, budget.ActCutoff)
	do(t, d, budget.ActCutoff) // must not replace the saved original with the empty table

	do(t, d, budget.ActRestore)

	calls := w.calls()
	if got, want := calls[2:], []string{"connect bot-bottle-dev1-egress-1 bot-bottle-dev1_egress [egress proxy]", "kill bot-bottle-dev1-egress-1 HUP"}; !slices.Equal(got, want) {
		t.Errorf("restore calls = %q, want %q", got, want)
	}
	if b, _ := os.ReadFile(routes); string(b) != routesYAML {
		t.Errorf("routes = %q, want the original %q", b, routesYAML)
	}
	if _, err := memo.Memo(context.Background(), "dev1", "cutoff"); !errors.Is(err, budget.ErrNotFound) {
		t.Errorf("memo after restore: err = %v, want not found", err)
	}
	do(t, d, budget.ActRestore)
	if got := w.calls(); len(got) != len(calls) {
		t.Errorf("second restore made calls %q", got[len(calls):])
	}
}

func TestFreezeCommitsAgentWritesStateAndStops(t *testing.T) {
	w, _ := bottleWorld(t)
	home := t.TempDir()
	d := enforcement.NewDocker(w.engine(), home, &enforcement.MemMemo{})

	do(t, d, budget.ActFreeze)
	do(t, d, budget.ActFreeze)

	want := []string{"commit bot-bottle-dev1 bot-bottle-committed-dev1:latest", "stop bot-bottle-dev1", "stop bot-bottle-dev1-egress-1"}
	if got := w.calls(); !slices.Equal(got, want) {
		t.Errorf("calls = %q, want %q", got, want)
	}
	b, err := os.ReadFile(filepath.Join(home, "state", "dev1", "committed-image"))
	if got := strings.TrimSpace(string(b)); err != nil || got != "bot-bottle-committed-dev1:latest" {
		t.Errorf("committed-image = %q, %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(home, "state", "dev1", ".preserve")); err != nil {
		t.Errorf(".preserve: %v", err)
	}
}

func TestFreezeWithoutAgentNameCommitsFirstGivenContainer(t *testing.T) {
	w, _ := bottleWorld(t)
	w.ctrs[0].name = "something-else"
	d := enforcement.NewDocker(w.engine(), t.TempDir(), &enforcement.MemMemo{})

	do(t, d, budget.ActFreeze, "c-stranger")

	if got := w.calls()[0]; got != "commit stranger bot-bottle-committed-dev1:latest" {
		t.Errorf("first call = %q, want the given container committed", got)
	}
}

func TestKillRemovesContainersAndProjectNetworks(t *testing.T) {
	w, _ := bottleWorld(t)
	d := enforcement.NewDocker(w.engine(), t.TempDir(), &enforcement.MemMemo{})

	do(t, d, budget.ActKill)
	do(t, d, budget.ActKill)

	want := []string{"stop bot-bottle-dev1", "rm bot-bottle-dev1", "stop bot-bottle-dev1-egress-1", "rm bot-bottle-dev1-egress-1",
		"rmnet bot-bottle-dev1_egress", "rmnet bot-bottle-dev1_internal"}
	if got := w.calls(); !slices.Equal(got, want) {
		t.Errorf("calls = %q, want %q", got, want)
	}
	if len(w.ctrs) != 1 || len(w.nets) != 1 {
		t.Errorf("left %d containers and %d networks, want the stranger and its network", len(w.ctrs), len(w.nets))
	}
}

func TestContainerGoneMidActionCountsAsDone(t *testing.T) {
	w, _ := bottleWorld(t)
	f := w.engine()
	f.ContainerInspectFn = func(context.Context, string, client.ContainerInspectOptions) (client.ContainerInspectResult, error) {
		return client.ContainerInspectResult{}, notFound("container")
	}
	d := enforcement.NewDocker(f, t.TempDir(), &enforcement.MemMemo{})
	for _, k := range []budget.ActionKind{budget.ActCutoff, budget.ActRestore, budget.ActFreeze} {
		do(t, d, k)
	}
}

func TestEngineErrorsAreClassified(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		class     error
		retryable bool
	}{
		{"connection refused", errors.New("dial unix /var/run/docker.sock: connect: connection refused"), budget.ErrUnavailable, true},
		{"internal", cerrdefs.ErrInternal, budget.ErrUnavailable, true},
		{"unavailable", cerrdefs.ErrUnavailable, budget.ErrUnavailable, true},
		{"denied", cerrdefs.ErrPermissionDenied, budget.ErrDenied, false},
		{"invalid", cerrdefs.ErrInvalidArgument, budget.ErrInvalid, false},
		{"conflict", cerrdefs.ErrConflict, budget.ErrConflict, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeEngine{ContainerListFn: func(context.Context, client.ContainerListOptions) (client.ContainerListResult, error) {
				return client.ContainerListResult{}, tt.err
			}}
			d := enforcement.NewDocker(f, t.TempDir(), &enforcement.MemMemo{})
			err := d.Do(context.Background(), enforcement.Action{Kind: budget.ActKill, Bottle: "dev1"})
			if !errors.Is(err, tt.class) || enforcement.Retryable(err) != tt.retryable {
				t.Errorf("err = %v, want class %v, retryable %v", err, tt.class, tt.retryable)
			}
		})
	}
}

func TestHungEngineCallTimesOutRetryably(t *testing.T) {
	f := &fakeEngine{ContainerListFn: func(ctx context.Context, _ client.ContainerListOptions) (client.ContainerListResult, error) {
		<-ctx.Done()
		return client.ContainerListResult{}, ctx.Err()
	}}
	d := enforcement.NewDocker(f, t.TempDir(), &enforcement.MemMemo{})
	d.CallTimeout = 20 * time.Millisecond
	err := d.Do(context.Background(), enforcement.Action{Kind: budget.ActCutoff, Bottle: "dev1"})
	if !enforcement.Retryable(err) {
		t.Errorf("timed-out call: err = %v, want retryable", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = d.Do(ctx, enforcement.Action{Kind: budget.ActCutoff, Bottle: "dev1"})
	if enforcement.Retryable(err) || !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled caller: err = %v, want context.Canceled, not retryable", err)
	}
}

func TestBottleContainersByLabelProjectAndID(t *testing.T) {
	w, _ := bottleWorld(t)
	w.ctrs[2].labels = map[string]string{enforcement.LabelBottle: "dev1"} // the stranger joins by label
	w.ctrs = append(w.ctrs, &fctr{id: "c-given-0123456789", name: "given", running: true, nets: map[string]*network.EndpointSettings{}})
	d := enforcement.NewDocker(w.engine(), t.TempDir(), &enforcement.MemMemo{})

	do(t, d, budget.ActFreeze, "c-given-0123", "c-agent") // short id; c-agent is listed once

	want := []string{"commit bot-bottle-dev1 bot-bottle-committed-dev1:latest",
		"stop given", "stop bot-bottle-dev1", "stop bot-bottle-dev1-egress-1", "stop stranger"}
	if got := w.calls(); !slices.Equal(got, want) {
		t.Errorf("calls = %q, want %q", got, want)
	}
}

func TestEmptyRoutesKeepsLogSetting(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"log line", "log: /var/log/x\nroutes:\n  - host: a\n", "log: /var/log/x\nroutes: []\n"},
		{"no log", "routes:\n  - host: a\n", "routes: []\n"},
		{"log block", "routes:\n  - host: a\nlog:\n  path: /x\n  level: debug\nother: 1\n", "log:\n  path: /x\n  level: debug\nroutes: []\n"},
		{"log last without newline", "routes: []\nlog: true", "log: true\nroutes: []\n"},
		{"empty", "", "routes: []\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(enforcement.EmptyRoutes([]byte(tt.in))); got != tt.want {
				t.Errorf("EmptyRoutes(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestEngineStatus(t *testing.T) {
	f := &fakeEngine{PingFn: func(context.Context, client.PingOptions) (client.PingResult, error) {
		return client.PingResult{APIVersion: "1.41"}, nil
	}}
	if ok, v, err := enforcement.EngineStatus(context.Background(), f); !ok || v != "1.41" || err != nil {
		t.Errorf("EngineStatus = %v, %q, %v; want true, 1.41, nil", ok, v, err)
	}
	f.PingFn = nil
	if ok, _, err := enforcement.EngineStatus(context.Background(), f); ok || !errors.Is(err, budget.ErrUnavailable) {
		t.Errorf("EngineStatus of a dead engine = %v, %v; want false, unavailable", ok, err)
	}
}
