package enforcement_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"

	"github.com/bot-bottle/bottlecap/enforcement"
	"github.com/bot-bottle/bottlecap/enforcement/dockertest"
)

// realBottle is a bottle on the real engine, shaped like bot-bottle's: an
// agent on an internal network, an egress sidecar on the internal and an
// egress network with its routes file bound in, and (optionally) an
// upstream on the egress network standing for the internet.
type realBottle struct {
	slug, project      string
	internal, egress   string // network names
	agent, sidecar, up string // container ids
	routes             string // host path of the routes file
}

const sidecarRoutes = "log: /dev/stdout\nroutes:\n  - host: upstream\n    port: 8081\n"

func newRealBottle(t *testing.T, cli *client.Client, withUpstream bool) *realBottle {
	t.Helper()
	img := testImage(t, cli)
	b := &realBottle{slug: "it-" + randHex()}
	b.project = enforcement.ProjectPrefix + b.slug
	b.internal, b.egress = b.project+"_internal", b.project+"_egress"
	b.routes = filepath.Join(t.TempDir(), "routes.yaml")
	if err := os.WriteFile(b.routes, []byte(sidecarRoutes), 0o644); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{enforcement.LabelProject: b.project}
	createNetwork(t, cli, b.internal, true, labels)
	createNetwork(t, cli, b.egress, false, labels)
	if withUpstream {
		b.up = runContainer(t, cli, container.Config{Image: img, Cmd: []string{"upstream", ":8081"}}, container.HostConfig{},
			"bottlecap-it-upstream-"+b.slug, b.egress, "upstream")
	}
	b.agent = runContainer(t, cli, container.Config{Image: img, Cmd: []string{"sleep"}, Labels: labels}, container.HostConfig{},
		b.project, b.internal, "agent")
	side := container.Config{Image: img, Labels: labels,
		Cmd: []string{"sidecar", ":8080", "http://upstream:8081/", enforcement.RoutesPath}}
	host := container.HostConfig{Mounts: []mount.Mount{{Type: mount.TypeBind, Source: b.routes, Target: enforcement.RoutesPath, ReadOnly: true}}}
	b.sidecar = runContainer(t, cli, side, host, b.project+"-egress-1", b.internal, "egress", connectTo{Network: b.egress, Alias: "proxy"})
	return b
}

type connectTo = dockertest.ConnectTo

// testDocker is the enforcer of the test's own daemon: it acts only on what
// the test made (dockertest scopes it to the test's daemon id).
func testDocker(t *testing.T, cli *client.Client, home string) *enforcement.Docker {
	t.Helper()
	d := enforcement.NewDocker(cli, home, &enforcement.MemMemo{})
	d.DaemonID = dockertest.DaemonID(t)
	return d
}

func createNetwork(t *testing.T, cli *client.Client, name string, internal bool, labels map[string]string) {
	t.Helper()
	dockertest.CreateNetwork(t, cli, name, internal, labels)
}

// runContainer creates and starts a container, removed when the test ends.
func runContainer(t *testing.T, cli *client.Client, cfg container.Config, host container.HostConfig, name, net, alias string, more ...connectTo) string {
	t.Helper()
	return dockertest.RunContainer(t, cli, cfg, host, name, net, alias, more...)
}

// inspectReal returns a container's details or fails the test.
func inspectReal(t *testing.T, cli *client.Client, id string) container.InspectResponse {
	t.Helper()
	return dockertest.Inspect(t, cli, id)
}
