// Package dockertest is what tests need to run against the real Docker
// engine: the gate that skips a test when no engine answers (and fails it
// under BOTTLECAP_REQUIRE_DOCKER=1, as CI runs), one shared test image per
// process (dockerlab builds it FROM scratch), and networks and containers
// removed when the test ends. It lives outside internal/ so that the
// daemon's end-to-end tests can use it too.
package dockertest

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/bot-bottle/bottlecap/enforcement/dockerlab"
)

// EnvRequire names the variable that turns "no engine" from a skip into a
// failure.
const EnvRequire = "BOTTLECAP_REQUIRE_DOCKER"

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
