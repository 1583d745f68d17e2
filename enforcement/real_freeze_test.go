package enforcement_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/enforcement"
)

func TestRealFreezeThenKill(t *testing.T) {
	t.Parallel()
	cli := realEngine(t)
	b := newRealBottle(t, cli, false)
	ref := enforcement.CommittedImage(b.slug)
	t.Cleanup(func() {
		cli.ImageRemove(context.Background(), ref, client.ImageRemoveOptions{Force: true, PruneChildren: true})
	})
	home := t.TempDir()
	d := testDocker(t, cli, home)
	act := func(k budget.ActionKind) {
		t.Helper()
		if err := d.Do(context.Background(), enforcement.Action{Kind: k, Bottle: b.slug}); err != nil {
			t.Fatalf("%s: %v", k, err)
		}
	}

	act(budget.ActFreeze)
	img, err := cli.ImageInspect(context.Background(), ref)
	if err != nil {
		t.Fatalf("committed image %s: %v", ref, err)
	}
	if len(img.Config.Cmd) == 0 || img.Config.Cmd[0] != "sleep" {
		t.Errorf("committed image cmd = %q, want the agent's", img.Config.Cmd)
	}
	state := enforcement.StateDir(home, b.slug)
	if got, err := os.ReadFile(filepath.Join(state, "committed-image")); err != nil || strings.TrimSpace(string(got)) != ref {
		t.Errorf("committed-image = %q, %v; want %s", got, err, ref)
	}
	if _, err := os.Stat(filepath.Join(state, ".preserve")); err != nil {
		t.Errorf(".preserve: %v", err)
	}
	for _, id := range []string{b.agent, b.sidecar} {
		if c := inspectReal(t, cli, id); c.State.Running {
			t.Errorf("%s still running after freeze", c.Name)
		}
	}
	unchanged(t, cli, b.slug, "second freeze", func() { act(budget.ActFreeze) })

	act(budget.ActKill)
	unchanged(t, cli, b.slug, "second kill", func() { act(budget.ActKill) })
	for _, id := range []string{b.agent, b.sidecar} {
		if _, err := cli.ContainerInspect(context.Background(), id, client.ContainerInspectOptions{}); !cerrdefs.IsNotFound(err) {
			t.Errorf("container %s after kill: err = %v, want not found", id[:12], err)
		}
	}
	nets, err := cli.NetworkList(context.Background(), client.NetworkListOptions{Filters: client.Filters{}.Add("name", b.project)})
	if err != nil || len(nets.Items) != 0 {
		t.Errorf("networks of %s after kill: %v, %v; want none", b.project, nets.Items, err)
	}
}
