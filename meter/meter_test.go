package meter_test

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/meter"
)

// startMeter starts a meter on a free loopback port in front of upstream
// for every family, stopping it when the test ends if the test did not.
func startMeter(t *testing.T, upstream string, cfg meter.Config) *meter.Meter {
	t.Helper()
	for _, api := range budget.ProviderAPIs() {
		u, err := meter.ParseUpstream(api.Family + "=" + upstream)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Upstreams = append(cfg.Upstreams, u)
	}
	cfg.Listen = "127.0.0.1:0"
	m, err := meter.Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		m.Stop(ctx) // a second Stop finds everything stopped
	})
	return m
}

// TestStartServesAndStopDelivers: a meter started from a socket path
// (it dials the daemon itself) serves a metered request on its listener,
// and Stop returns only once the report is in the ledger; then the
// listener is gone.
func TestStartServesAndStopDelivers(t *testing.T) {
	d := startDaemon(t)
	release := make(chan struct{})
	close(release)
	m := startMeter(t, chatUpstream(t, release, nil), meter.Config{Bottle: "start-1", Agent: "implementer", Socket: d.Sock})
	resp := post(t, "http://"+m.Addr().String()+"/v1/chat/completions", `{"stream":true}`)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.Stop(ctx); err != nil {
		t.Fatalf("Stop = %v, want nil", err)
	}
	assertOnce(t, d, "start-1", "chatcmpl-ABfw1e5abtU8OwGr15vOreYVb2MiF")
	if c, err := net.Dial("tcp", m.Addr().String()); err == nil {
		c.Close()
		t.Errorf("the meter still accepts connections after Stop")
	}
}

// TestStopKeepsUndeliveredInSpool: with the daemon unreachable (fail-open
// forwards), Stop waits Config.Drain for the queue, then says how many
// reports it left in the spool, and the spool holds them.
func TestStopKeepsUndeliveredInSpool(t *testing.T) {
	spool := filepath.Join(t.TempDir(), "queue.ndjson")
	release := make(chan struct{})
	close(release)
	m := startMeter(t, chatUpstream(t, release, nil), meter.Config{Bottle: "start-2",
		Socket: "/nonexistent/run/bottlecap.sock", FailOpen: true, SpoolPath: spool, Drain: 50 * time.Millisecond})
	resp := post(t, "http://"+m.Addr().String()+"/v1/chat/completions", `{"stream":true}`)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.Stop(ctx); err == nil || !strings.Contains(err.Error(), "1 usage reports") || !strings.Contains(err.Error(), spool) {
		t.Errorf("Stop = %v, want an error saying 1 report is kept in %s", err, spool)
	}
	if b, _ := os.ReadFile(spool); !strings.Contains(string(b), "chatcmpl-ABfw1e5abtU8OwGr15vOreYVb2MiF") {
		t.Errorf("spool does not hold the report: %q", b)
	}
}

func TestStartRefusesBadListen(t *testing.T) {
	_, err := meter.Start(t.Context(), meter.Config{Bottle: "start-3", Socket: "/nonexistent/bottlecap.sock", Listen: "nonsense"})
	if err == nil || !strings.Contains(err.Error(), "listen on nonsense") {
		t.Errorf("Start = %v, want an error naming the listen address", err)
	}
}
