package enforcement_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"

	"github.com/bot-bottle/bottlecap/enforcement/dockerlab"
	"github.com/bot-bottle/bottlecap/enforcement/dockertest"
)

// The tests against the real engine share one client and one image (see
// package dockertest), built on first use and removed by TestMain.
func TestMain(m *testing.M) {
	code := m.Run()
	if err := dockertest.Cleanup(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

// realEngine returns a client for the local engine, or skips the test when
// none answers, unless BOTTLECAP_REQUIRE_DOCKER=1 (CI), where that fails.
func realEngine(t *testing.T) *client.Client {
	t.Helper()
	return dockertest.Engine(t)
}

// testImage returns the test image's reference, building it on first use.
func testImage(t *testing.T, cli *client.Client) string {
	t.Helper()
	return dockertest.Image(t, cli)
}

func randHex() string { return dockerlab.RandHex() }

// execIn runs a command in a container and returns its output and exit code.
func execIn(t *testing.T, cli *client.Client, ctr string, cmd ...string) (string, int) {
	t.Helper()
	return dockertest.Exec(t, cli, ctr, cmd...)
}

// unchanged runs f and fails the test if the engine reports any change to
// a container, network or image of the bottle meanwhile (exec events
// aside): the proof that a repeated action did nothing. Events of other
// objects (tests running in parallel) are not this bottle's and are passed
// over.
func unchanged(t *testing.T, cli *client.Client, slug, what string, f func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	filters := client.Filters{}.Add("type", "container", "network", "image").
		Add("event", "kill", "stop", "die", "start", "destroy", "commit", "tag", "connect", "disconnect", "create")
	ev := cli.Events(ctx, client.EventsListOptions{Filters: filters})
	f()
	quiet := time.NewTimer(300 * time.Millisecond)
	defer quiet.Stop()
	for { // until the engine has been quiet about the bottle for a while
		select {
		case m := <-ev.Messages:
			if ofBottle(m, slug) {
				t.Errorf("%s: engine reported %s %s %s", what, m.Type, m.Action, m.Actor.Attributes["name"])
				quiet.Reset(300 * time.Millisecond)
			}
		case err := <-ev.Err:
			t.Fatalf("%s: events: %v", what, err)
		case <-quiet.C:
			return
		}
	}
}

// ofBottle reports whether an event is about one of the bottle's objects:
// every one of them carries the slug in its name or its labels.
func ofBottle(m events.Message, slug string) bool {
	for _, v := range m.Actor.Attributes {
		if strings.Contains(v, slug) {
			return true
		}
	}
	return false
}
