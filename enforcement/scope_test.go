package enforcement_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/enforcement"
)

// sharedWorld is bottle dev1 as two daemons on one engine see it: a user's
// containers and networks without a daemon label, and those a test made
// for its daemon t1 (one by project, one by the bottle label, a network
// named as the project's).
func sharedWorld() *world {
	project := map[string]string{enforcement.LabelProject: "bot-bottle-dev1"}
	t1 := map[string]string{enforcement.LabelProject: "bot-bottle-dev1", enforcement.LabelDaemon: "t1"}
	w := &world{images: map[string]bool{}, nets: map[string]network.Inspect{
		"n-int": {Network: network.Network{ID: "n-int", Name: "bot-bottle-dev1_internal", Labels: project}},
		"n-egr": {Network: network.Network{ID: "n-egr", Name: "bot-bottle-dev1_egress"}},
		"n-t1":  {Network: network.Network{ID: "n-t1", Name: "bot-bottle-dev1_t1", Labels: map[string]string{enforcement.LabelDaemon: "t1"}}},
	}}
	w.ctrs = []*fctr{
		{id: "c-agent", name: "bot-bottle-dev1", labels: project, created: 1, running: true},
		{id: "c-side", name: "bot-bottle-dev1-egress-1", labels: project, created: 2, running: true},
		{id: "c-t1", name: "t1-agent", labels: t1, created: 3, running: true},
		{id: "c-t1-label", name: "t1-tool", created: 4, running: true,
			labels: map[string]string{enforcement.LabelBottle: "dev1", enforcement.LabelDaemon: "t1"}},
	}
	return w
}

// TestDaemonsActOnlyOnTheirOwnContainers: whatever names, labels or ids
// an action's bottle matches, a daemon touches only the containers and
// networks of its own daemon id, so a user's daemon and a test's daemon
// sharing an engine never act on each other's.
func TestDaemonsActOnlyOnTheirOwnContainers(t *testing.T) {
	tests := []struct {
		name, daemonID string
		kind           budget.ActionKind
		given          []string
		want           []string
	}{
		{"a user's daemon kills its own", "", budget.ActKill, []string{"c-t1"}, []string{
			"stop bot-bottle-dev1", "rm bot-bottle-dev1", "stop bot-bottle-dev1-egress-1", "rm bot-bottle-dev1-egress-1",
			"rmnet bot-bottle-dev1_egress", "rmnet bot-bottle-dev1_internal"}},
		{"a test's daemon kills its own", "t1", budget.ActKill, []string{"c-agent"}, []string{
			"stop t1-agent", "rm t1-agent", "stop t1-tool", "rm t1-tool", "rmnet bot-bottle-dev1_t1"}},
		{"a test's daemon freezes its own, not the agent by name", "t1", budget.ActFreeze, nil, []string{
			"commit t1-agent bot-bottle-committed-dev1:latest", "stop t1-agent", "stop t1-tool"}},
		{"another daemon has nothing of dev1", "t2", budget.ActKill, []string{"c-agent", "c-t1"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := sharedWorld()
			d := enforcement.NewDocker(w.engine(), t.TempDir(), &enforcement.MemMemo{})
			d.DaemonID = tt.daemonID
			do(t, d, tt.kind, tt.given...)
			if got := w.calls(); !slices.Equal(got, tt.want) {
				t.Errorf("calls = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestWatchTakesOnlyItsDaemonsContainers: from the initial list and from
// events alike, a watcher reports the containers of its own daemon id and
// passes over every other one.
func TestWatchTakesOnlyItsDaemonsContainers(t *testing.T) {
	of := func(slug, daemonID string) map[string]string {
		l := map[string]string{enforcement.LabelBottle: slug}
		if daemonID != "" {
			l[enforcement.LabelDaemon] = daemonID
		}
		return l
	}
	listed := []container.Summary{
		{ID: "A", Labels: of("a", ""), State: container.StateRunning},
		{ID: "B", Labels: of("b", "t1"), State: container.StateRunning},
		{ID: "C", Labels: of("c", "t2"), State: container.StateRunning},
		{ID: "E", Labels: map[string]string{enforcement.LabelBottle: "e", enforcement.LabelDaemon: ""}, State: container.StateRunning},
	}
	started := []events.Message{
		startEvent("D", of("d", "t1")),
		startEvent("F", of("f", "")),
		startEvent("G", of("g", "t2")),
	}
	tests := []struct {
		daemonID string
		want     []string
	}{
		{"", []string{"A a", "E e", "F f"}},
		{"t1", []string{"B b", "D d"}},
		{"t3", nil},
	}
	for _, tt := range tests {
		t.Run("daemon id "+tt.daemonID, func(t *testing.T) {
			if got := watchAll(t, tt.daemonID, listed, started); !slices.Equal(got, tt.want) {
				t.Errorf("reported %q, want %q", got, tt.want)
			}
		})
	}
}

func startEvent(id string, labels map[string]string) events.Message {
	return events.Message{Type: events.ContainerEventType, Action: events.ActionStart, Actor: events.Actor{ID: id, Attributes: labels}}
}

// watchAll runs a watcher of daemonID over an engine that lists listed and
// then sends started, and returns what it reported ("<id> <bottle>"). The
// events go one at a time, the last followed by one of no container: once
// the watcher has taken that, it has handled every one before.
func watchAll(t *testing.T, daemonID string, listed []container.Summary, started []events.Message) []string {
	t.Helper()
	feed := make(chan events.Message)
	f := &fakeEngine{
		ContainerListFn: func(context.Context, client.ContainerListOptions) (client.ContainerListResult, error) {
			return client.ContainerListResult{Items: listed}, nil
		},
		EventsFn: func(context.Context, client.EventsListOptions) client.EventsResult {
			return client.EventsResult{Messages: feed, Err: make(chan error)}
		},
	}
	var got []string // written by the watcher, read after it stopped
	w := &enforcement.Watcher{Engine: f, DaemonID: daemonID, Report: func(d enforcement.Discovered) {
		got = append(got, d.ContainerID+" "+d.Bottle)
	}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	for _, m := range append(started, events.Message{Type: events.ContainerEventType, Action: events.ActionStart}) {
		feed <- m
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	return got
}

// TestContainerBottleOnlyForItsDaemon: a socket peer in a container of
// another daemon is in no bottle of this one (its reports are refused).
func TestContainerBottleOnlyForItsDaemon(t *testing.T) {
	tests := []struct {
		name, daemonID string
		labels         map[string]string
		want           string
	}{
		{"a user's container, a user's daemon", "", map[string]string{enforcement.LabelBottle: "b"}, "b"},
		{"a test's container, a user's daemon", "", map[string]string{enforcement.LabelBottle: "b", enforcement.LabelDaemon: "t1"}, ""},
		{"a test's container, its daemon", "t1", map[string]string{enforcement.LabelBottle: "b", enforcement.LabelDaemon: "t1"}, "b"},
		{"a user's container, a test's daemon", "t1", map[string]string{enforcement.LabelBottle: "b"}, ""},
		{"another test's container", "t1", map[string]string{enforcement.LabelBottle: "b", enforcement.LabelDaemon: "t2"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeEngine{ContainerInspectFn: func(context.Context, string, client.ContainerInspectOptions) (client.ContainerInspectResult, error) {
				return client.ContainerInspectResult{Container: container.InspectResponse{Config: &container.Config{Labels: tt.labels}}}, nil
			}}
			slug, ok := enforcement.ContainerBottle(context.Background(), f, "c1", tt.daemonID)
			if slug != tt.want || ok != (tt.want != "") {
				t.Errorf("ContainerBottle = %q, %v; want %q", slug, ok, tt.want)
			}
		})
	}
}
