package main

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/client"
	"github.com/bot-bottle/bottlecap/enforcement"
	"github.com/bot-bottle/bottlecap/enforcement/dockertest"
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
	slug := "e2e-" + dockertest.RandHex()
	project := enforcement.ProjectPrefix + slug
	labels := map[string]string{enforcement.LabelProject: project}
	net := project + "_internal"
	dockertest.CreateNetwork(t, cli, net, true, labels)
	cfg := container.Config{Image: dockertest.Image(t, cli), Cmd: []string{"sleep"}, Labels: labels}
	host := container.HostConfig{Mounts: []mount.Mount{{Type: mount.TypeBind, Source: home + "/run", Target: "/run/bottlecap"}}}
	sidecar := dockertest.RunContainer(t, cli, cfg, host, project+"-egress-1", net, "egress")
	tests := []struct {
		name, bottle, want string
	}{
		{"another bottle", "other-" + dockertest.RandHex(), "403"},
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
