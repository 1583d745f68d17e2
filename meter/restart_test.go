package meter_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/meter"
)

// chatUpstream streams the recorded Chat stream (with its usage chunk) once
// release is closed, and records the request body it was sent.
func chatUpstream(t *testing.T, release <-chan struct{}, got chan<- string) string {
	body := readFixture(t, "openai-chat-stream-include-usage.sse")
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if got != nil {
			got <- string(b) + " content-length=" + strconv.FormatInt(r.ContentLength, 10)
		}
		<-release
		w.Header().Set("Content-Type", "text/event-stream")
		w.Write(body)
	})
	return up.URL
}

func TestIncludeUsageInjected(t *testing.T) {
	d := startDaemon(t)
	release, got := make(chan struct{}), make(chan string, 1)
	close(release)
	_, srv := meterFor(t, d.Sock, "inject-1", chatUpstream(t, release, got), nil)
	resp := post(t, srv.URL+"/v1/chat/completions", `{"model":"gpt-4o","stream":true}`)
	io.Copy(io.Discard, resp.Body)
	want := `{"stream_options":{"include_usage":true},"model":"gpt-4o","stream":true}`
	if g := <-got; g != want+" content-length="+strconv.Itoa(len(want)) {
		t.Errorf("upstream got %s, want %s with its length", g, want)
	}
	eventually(t, "the report lands", func() bool { return len(d.reports("inject-1")) == 1 })
	if r := d.reports("inject-1")[0]; !r.Complete || r.Input != 79 || r.Output != 14 {
		t.Errorf("report %+v, want complete 79 in / 14 out", r)
	}
}

// TestDaemonRestartMidStream: the gate answers, then the daemon goes away
// before the response ends; the meter keeps the report and delivers it,
// once, when a daemon comes back on the same socket and ledger.
func TestDaemonRestartMidStream(t *testing.T) {
	d := startDaemon(t)
	release, arrived := make(chan struct{}), make(chan string, 1)
	p, srv := meterFor(t, d.Sock, "restart-1", chatUpstream(t, release, arrived), nil)
	done := make(chan []byte)
	go func() {
		resp, err := http.Post(srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(`{"stream":true}`))
		if err != nil {
			t.Error(err)
			close(done)
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		done <- b
	}()
	<-arrived // the gate let the request through
	d.Stop()
	close(release)
	<-done
	eventually(t, "the report waits in the queue", func() bool { return p.Pending() == 1 })
	d.Restart()
	eventually(t, "the report is delivered", func() bool { return p.Pending() == 0 })
	assertOnce(t, d, "restart-1", "chatcmpl-ABfw1e5abtU8OwGr15vOreYVb2MiF")
}

func assertOnce(t *testing.T, d *daemon, bottle, id string) {
	t.Helper()
	rs := d.reports(bottle)
	if len(rs) != 1 || rs[0].ID != id {
		t.Fatalf("ledger holds %+v, want exactly one report %s", rs, id)
	}
}

// TestSpoolSurvivesMeterRestart: reports the daemon never acknowledged are
// kept in the spool when the meter stops, replayed by the next meter, and
// counted once even if they are sent again.
func TestSpoolSurvivesMeterRestart(t *testing.T) {
	d := startDaemon(t)
	spool := filepath.Join(d.Dir, "meter", "queue.ndjson")
	release := make(chan struct{})
	close(release)
	up := chatUpstream(t, release, nil)
	p1, srv1 := meterFor(t, d.Sock, "spool-1", up, func(c *meter.Config) { c.SpoolPath = spool; c.FailOpen = true })
	d.Stop()
	resp := post(t, srv1.URL+"/v1/chat/completions", `{"stream":true}`)
	io.Copy(io.Discard, resp.Body)
	eventually(t, "the report waits in the queue", func() bool { return p1.Pending() == 1 })
	srv1.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := p1.Close(ctx); err == nil || !strings.Contains(err.Error(), spool) {
		t.Errorf("Close = %v, want an error saying the report is kept in %s", err, spool)
	}
	if b, _ := os.ReadFile(spool); !strings.Contains(string(b), "chatcmpl-ABfw1e5abtU8OwGr15vOreYVb2MiF") {
		t.Fatalf("spool does not hold the report: %q", b)
	}
	// Send it twice: the daemon counts it once.
	os.WriteFile(spool, append(readOrEmpty(spool), readOrEmpty(spool)...), 0o600)
	d.Restart()
	p2, _ := meterFor(t, d.Sock, "spool-1", up, func(c *meter.Config) { c.SpoolPath = spool })
	eventually(t, "the replayed report is delivered", func() bool { return p2.Pending() == 0 && len(d.reports("spool-1")) == 1 })
	assertOnce(t, d, "spool-1", "chatcmpl-ABfw1e5abtU8OwGr15vOreYVb2MiF")
	eventually(t, "the spool is emptied", func() bool { return len(readOrEmpty(spool)) == 0 })
}

func readOrEmpty(path string) []byte {
	b, _ := os.ReadFile(path)
	return b
}
