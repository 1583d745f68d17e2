package meter_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/daemon/daemontest"
	"github.com/bot-bottle/bottlecap/meter"
)

// TestPauseEndsStreamsUntilRestored: the meter needs nothing of its own
// for a pause. An operator pauses the bottle while a stream is live: the
// bottle leaves active (pending, then paused), so the stream is cut at
// once, before the engine pauses the agent; while paused, a new request
// is refused naming the pause and its reason, even by a gate that would
// allow it; once restored, requests pass again.
func TestPauseEndsStreamsUntilRestored(t *testing.T) {
	d := &daemon{Daemon: daemontest.Start(t, daemontest.Options{Enforcer: finishingEnforcer{}}), t: t}
	tt := cutCases[0]
	d.register("pausing", nil)
	h, gone := ratedStream(tt.head, tt.delta)
	_, srv := meterFor(t, d.Sock, "pausing", newUpstream(t, h).URL, func(c *meter.Config) {
		c.Daemon = allowingGate{c.Daemon}
	})
	resp := postStream(t, srv.URL+tt.path, tt.body)
	_, last := readStream(t, resp.Body, func(seen int) {
		if seen == 3 {
			if _, err := d.Client.Act(context.Background(), "pausing", api.ActionRequest{Action: "pause", Reason: "looping"}); err != nil {
				t.Errorf("pause: %v", err)
			}
		}
	})
	if !strings.HasPrefix(last, tt.marker) || !strings.Contains(last, "looping") {
		t.Errorf("last event %q, want the provider's error event naming the pause's reason", last)
	}
	waitGone(t, gone)

	eventually(t, "a paused bottle's request is refused naming the pause", func() bool {
		resp := postStream(t, srv.URL+tt.path, tt.body)
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == http.StatusTooManyRequests && strings.Contains(string(b), "bottle pausing is paused: looping")
	})
	if _, err := d.Client.Act(t.Context(), "pausing", api.ActionRequest{Action: "restore"}); err != nil {
		t.Fatal(err)
	}
	eventuallyPasses(t, srv.URL+tt.path, tt.body)
}
