// Package enforcement is bottlecap's Docker side: it cuts bottles off,
// pauses, restores, freezes and kills them through the Docker Engine API, runs
// those actions with retries, and discovers bottles from container labels
// and events. Engine errors are translated here, once, into budget's error
// classes.
package enforcement

import (
	"context"
	"fmt"
	"time"

	"github.com/moby/moby/client"
)

// Engine is the part of the Docker Engine API that enforcement uses. It is
// declared here, where it is used, so that unit tests can supply a small
// hand-written fake and the daemon the real *client.Client.
type Engine interface {
	Ping(ctx context.Context, options client.PingOptions) (client.PingResult, error)
	ContainerList(ctx context.Context, options client.ContainerListOptions) (client.ContainerListResult, error)
	ContainerInspect(ctx context.Context, id string, options client.ContainerInspectOptions) (client.ContainerInspectResult, error)
	ContainerKill(ctx context.Context, id string, options client.ContainerKillOptions) (client.ContainerKillResult, error)
	ContainerCommit(ctx context.Context, id string, options client.ContainerCommitOptions) (client.ContainerCommitResult, error)
	ContainerStop(ctx context.Context, id string, options client.ContainerStopOptions) (client.ContainerStopResult, error)
	ContainerRemove(ctx context.Context, id string, options client.ContainerRemoveOptions) (client.ContainerRemoveResult, error)
	ContainerPause(ctx context.Context, id string, options client.ContainerPauseOptions) (client.ContainerPauseResult, error)
	ContainerUnpause(ctx context.Context, id string, options client.ContainerUnpauseOptions) (client.ContainerUnpauseResult, error)
	ImageInspect(ctx context.Context, id string, options ...client.ImageInspectOption) (client.ImageInspectResult, error)
	NetworkInspect(ctx context.Context, id string, options client.NetworkInspectOptions) (client.NetworkInspectResult, error)
	NetworkConnect(ctx context.Context, id string, options client.NetworkConnectOptions) (client.NetworkConnectResult, error)
	NetworkDisconnect(ctx context.Context, id string, options client.NetworkDisconnectOptions) (client.NetworkDisconnectResult, error)
	NetworkList(ctx context.Context, options client.NetworkListOptions) (client.NetworkListResult, error)
	NetworkRemove(ctx context.Context, id string, options client.NetworkRemoveOptions) (client.NetworkRemoveResult, error)
	Events(ctx context.Context, options client.EventsListOptions) client.EventsResult
}

// Conn is a connection to the Docker engine as the daemon holds it: the
// Engine enforcement drives, and Close for when the daemon stops. Callers
// outside enforcement reach the engine only through it, so the Docker
// client stays an import of this package alone.
type Conn interface {
	Engine
	// Close releases the client's idle connections.
	Close() error
}

var _ Conn = (*client.Client)(nil)

// Connect makes a client for the engine named by the environment
// (DOCKER_HOST and friends, else the local socket). The client negotiates
// the API version on first use (the default since moby/client v0.5), so the same binary works with engines from API 1.40
// upwards. Nothing is dialled until the first call.
func Connect() (Conn, error) {
	c, err := client.New(client.FromEnv)
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	return c, nil
}

// EngineStatus answers `bottlecap status`: whether the engine answers and
// which API version it speaks. An engine that does not answer is not an
// error of the status command, so reachable is false and err wraps
// budget.ErrUnavailable for callers that want the reason.
func EngineStatus(ctx context.Context, engine Engine) (reachable bool, apiVersion string, err error) {
	ping, err := call(ctx, DefaultCallTimeout, "ping docker engine", func(ctx context.Context) (client.PingResult, error) {
		return engine.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
	})
	if err != nil {
		return false, "", err
	}
	return true, ping.APIVersion, nil
}

// ContainerBottle finds the bottle a container (a socket peer) is in, from
// its labels. ok is false when the container is not a bottle of the daemon
// whose id is daemonID or the engine cannot say within two seconds: the
// caller then refuses, never guesses.
func ContainerBottle(ctx context.Context, engine Engine, containerID, daemonID string) (slug string, ok bool) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	res, err := engine.ContainerInspect(ctx, containerID, client.ContainerInspectOptions{})
	if err != nil || res.Container.Config == nil || !OfDaemon(res.Container.Config.Labels, daemonID) {
		return "", false
	}
	return BottleOf(res.Container.Config.Labels)
}
