// Package dockertest is what tests need to run against the real Docker
// engine: the gate that skips a test when no engine answers (and fails it
// under BOTTLECAP_REQUIRE_DOCKER=1, as CI runs), one shared test image per
// process (dockerlab builds it FROM scratch), and networks and containers
// scoped to the test's own daemon id and removed when the test ends. It
// lives outside internal/ so that the daemon's end-to-end tests can use it
// too.
package dockertest

import (
	"context"
	"maps"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/bot-bottle/bottlecap/enforcement"
	"github.com/bot-bottle/bottlecap/enforcement/dockerlab"
)

// EnvRequire names the variable that turns "no engine" from a skip into a
// failure.
const EnvRequire = "BOTTLECAP_REQUIRE_DOCKER"

// daemonIDs are the daemon ids of this process's tests, by top-level test.
var daemonIDs struct {
	sync.Mutex
	byTest map[string]string
}

// DaemonID is the daemon id of test t and its subtests: everything
// CreateNetwork and RunContainer make for t is labelled
// bot-bottle.daemon=<it>, and the test's daemons run with it (daemontest
// does so itself; a `bottlecap serve` needs --daemon-id). A user's daemon
// on the same engine, which has no id, and the daemons of other tests
// then neither register nor act on what t made, nor does t's daemon on
// theirs. Each top-level test of each process has its own.
func DaemonID(t testing.TB) string {
	top, _, _ := strings.Cut(t.Name(), "/")
	daemonIDs.Lock()
	defer daemonIDs.Unlock()
	if daemonIDs.byTest == nil {
		daemonIDs.byTest = map[string]string{}
	}
	id, ok := daemonIDs.byTest[top]
	if !ok {
		id = "test-" + dockerlab.RandHex()
		daemonIDs.byTest[top] = id
	}
	return id
}

// scoped is labels with bot-bottle.daemon set to t's daemon id, unless the
// test gave that label itself (to make something another daemon's). No
// test may make what a daemon without an id would take: an empty value
// fails it.
func scoped(t testing.TB, labels map[string]string) map[string]string {
	t.Helper()
	out := maps.Clone(labels)
	if out == nil {
		out = map[string]string{}
	}
	id, given := out[enforcement.LabelDaemon]
	switch {
	case !given:
		out[enforcement.LabelDaemon] = DaemonID(t)
	case id == "":
		t.Fatalf("label %s is empty: a user's daemon on this engine would take the container as its own", enforcement.LabelDaemon)
	}
	return out
}

// shared is one image per process, built on first use.
var shared struct {
	imgMu  sync.Mutex
	cli    *client.Client // the image's engine
	image  string
	imgErr error
}

// Engine returns the engine's client, or skips the test when none answers,
// unless BOTTLECAP_REQUIRE_DOCKER=1, where that fails it.
func Engine(t testing.TB) *client.Client {
	t.Helper()
	cli, err := dockerlab.Connect()
	if err != nil {
		if os.Getenv(EnvRequire) == "1" {
			t.Fatalf("docker engine required (%s=1): %v", EnvRequire, err)
		}
		t.Skipf("no docker engine: %v", err)
	}
	return cli
}

// Image returns the shared test image's reference, building it on first
// use. Call Cleanup from TestMain to remove it.
func Image(t testing.TB, cli *client.Client) string {
	t.Helper()
	shared.imgMu.Lock()
	defer shared.imgMu.Unlock()
	if shared.image == "" && shared.imgErr == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		shared.cli = cli
		shared.image, shared.imgErr = dockerlab.BuildImage(ctx, cli)
	}
	if shared.imgErr != nil {
		t.Fatalf("build test image: %v", shared.imgErr)
	}
	return shared.image
}

// Cleanup removes the shared test image if one was built; TestMain calls
// it after the tests, since the image outlives any one test.
func Cleanup() error {
	shared.imgMu.Lock()
	defer shared.imgMu.Unlock()
	if shared.image == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := dockerlab.RemoveImage(ctx, shared.cli, shared.image)
	shared.image = ""
	return err
}
