package dockertest

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// ConnectTo is one more network a container joins before it starts, under
// an alias.
type ConnectTo struct{ Network, Alias string }

// CreateNetwork creates a bridge network of the test's daemon (see
// DaemonID) and removes it when the test ends.
func CreateNetwork(t testing.TB, cli *client.Client, name string, internal bool, labels map[string]string) {
	t.Helper()
	ctx := context.Background()
	if _, err := cli.NetworkCreate(ctx, name, client.NetworkCreateOptions{Driver: "bridge", Internal: internal, Labels: scoped(t, labels)}); err != nil {
		t.Fatalf("create network %s: %v", name, err)
	}
	t.Cleanup(func() { cli.NetworkRemove(context.Background(), name, client.NetworkRemoveOptions{}) })
}

// RunContainer creates and starts a container of the test's daemon (see
// DaemonID) on one network (API 1.41 takes one at creation), connects it
// to the others before it starts, and removes it when the test ends.
func RunContainer(t testing.TB, cli *client.Client, cfg container.Config, host container.HostConfig, name, net, alias string, more ...ConnectTo) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg.Labels = scoped(t, cfg.Labels)
	host.NetworkMode = container.NetworkMode(net)
	ep := &network.EndpointSettings{}
	if alias != "" {
		ep.Aliases = []string{alias}
	}
	res, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{Name: name, Config: &cfg, HostConfig: &host,
		NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{net: ep}}})
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	t.Cleanup(func() {
		cli.ContainerRemove(context.Background(), res.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	})
	for _, c := range more {
		if _, err := cli.NetworkConnect(ctx, c.Network, client.NetworkConnectOptions{Container: res.ID,
			EndpointConfig: &network.EndpointSettings{Aliases: []string{c.Alias}}}); err != nil {
			t.Fatalf("connect %s to %s: %v", name, c.Network, err)
		}
	}
	if _, err := cli.ContainerStart(ctx, res.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	return res.ID
}

// Inspect returns a container's details or fails the test.
func Inspect(t testing.TB, cli *client.Client, id string) container.InspectResponse {
	t.Helper()
	res, err := cli.ContainerInspect(context.Background(), id, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatalf("inspect %s: %v", id, err)
	}
	return res.Container
}

// Exec runs a command in a container and returns its output and exit code.
func Exec(t testing.TB, cli *client.Client, ctr string, cmd ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ex, err := cli.ExecCreate(ctx, ctr, client.ExecCreateOptions{Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		t.Fatalf("exec %v in %s: %v", cmd, ctr, err)
	}
	att, err := cli.ExecAttach(ctx, ex.ID, client.ExecAttachOptions{})
	if err != nil {
		t.Fatalf("exec attach: %v", err)
	}
	defer att.Close()
	var out bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &out, att.Reader); err != nil {
		t.Fatalf("exec output: %v", err)
	}
	for {
		res, err := cli.ExecInspect(ctx, ex.ID, client.ExecInspectOptions{})
		if err != nil {
			t.Fatalf("exec inspect: %v", err)
		}
		if !res.Running {
			return strings.TrimSpace(out.String()), res.ExitCode
		}
		time.Sleep(20 * time.Millisecond)
	}
}
