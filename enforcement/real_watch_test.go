package enforcement_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/enforcement"
	"github.com/bot-bottle/bottlecap/enforcement/dockertest"
)

func TestRealEngineStatus(t *testing.T) {
	t.Parallel()
	cli := realEngine(t)
	ok, version, err := enforcement.EngineStatus(context.Background(), cli)
	if !ok || err != nil || version == "" {
		t.Errorf("EngineStatus = %v, %q, %v; want reachable with a version", ok, version, err)
	}
}

// TestRealWatchDiscoversLabelledContainers starts a labelled container
// before the watch (found by the initial list) and one after (found by its
// start event), then stops and removes them.
func TestRealWatchDiscoversLabelledContainers(t *testing.T) {
	t.Parallel()
	cli := realEngine(t)
	img := testImage(t, cli)
	slug := "w-" + randHex()
	labels := map[string]string{enforcement.LabelBottle: slug, enforcement.LabelBudget: "claude=1M,codex=500k",
		enforcement.LabelShutdown: "freeze", enforcement.LabelAgent: "implementer", enforcement.LabelParent: "root"}
	early := runContainer(t, cli, container.Config{Image: img, Cmd: []string{"sleep"}, Labels: labels}, container.HostConfig{},
		"bottlecap-it-"+slug+"-early", "bridge", "")

	reports := make(chan enforcement.Discovered, 100)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	w := &enforcement.Watcher{Engine: cli, DaemonID: dockertest.DaemonID(t), Report: func(d enforcement.Discovered) {
		if d.Bottle == slug {
			reports <- d
		}
	}}
	go func() { done <- w.Run(ctx) }()
	defer func() { cancel(); <-done }()

	d := await(t, reports, early, enforcement.StateRunning)
	want := budget.Limits{"claude": budget.Lifetime(1_000_000), "codex": budget.Lifetime(500_000)}
	if d.Err != nil || d.Agent != "implementer" || d.Parent != "root" || d.Shutdown != budget.Freeze || !reflect.DeepEqual(d.Budget, want) {
		t.Errorf("discovered %+v, want the labels parsed", d)
	}
	late := runContainer(t, cli, container.Config{Image: img, Cmd: []string{"sleep"}, Labels: labels}, container.HostConfig{},
		"bottlecap-it-"+slug+"-late", "bridge", "")
	await(t, reports, late, enforcement.StateRunning)
	grace := 5
	if _, err := cli.ContainerStop(ctx, late, client.ContainerStopOptions{Timeout: &grace}); err != nil {
		t.Fatal(err)
	}
	await(t, reports, late, enforcement.StateDied)
	if _, err := cli.ContainerRemove(ctx, late, client.ContainerRemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	await(t, reports, late, enforcement.StateRemoved)
}

// await returns the first report of container id in state s.
func await(t *testing.T, reports <-chan enforcement.Discovered, id string, s enforcement.ContainerState) enforcement.Discovered {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case d := <-reports:
			if d.ContainerID == id && d.State == s {
				return d
			}
		case <-timeout:
			t.Fatalf("container %s never reported %s", id[:12], s)
		}
	}
}
