package meter_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/client"
	"github.com/bot-bottle/bottlecap/daemon/daemontest"
	"github.com/bot-bottle/bottlecap/internal/testutil"
	"github.com/bot-bottle/bottlecap/meter"
)

// daemon is a real daemon for one test (package daemontest).
type daemon struct {
	*daemontest.Daemon
	t *testing.T
}

// startDaemon runs a daemon on default settings until the test ends.
func startDaemon(t *testing.T) *daemon {
	t.Helper()
	return &daemon{Daemon: daemontest.Start(t, daemontest.Options{}), t: t}
}

// reports is the ledger's reports of a bottle.
func (d *daemon) reports(bottle string) []budget.Report {
	d.t.Helper()
	rs, err := d.DB.RecentReports(context.Background(), bottle, 0)
	if err != nil {
		d.t.Fatalf("reports: %v", err)
	}
	return rs
}

// meterFor starts a proxy in front of upstream (every API of the provider
// table) for bottle, reporting to the daemon at sock, and serves it over
// HTTP.
func meterFor(t *testing.T, sock, bottle, upstream string, tweak func(*meter.Config)) (*meter.Proxy, *httptest.Server) {
	t.Helper()
	var ups []meter.Upstream
	for _, api := range budget.ProviderAPIs() {
		u, err := meter.ParseUpstream(api.Family + "=" + upstream)
		if err != nil {
			t.Fatal(err)
		}
		ups = append(ups, u)
	}
	dc := client.New(sock, client.WithRetry(0), client.WithTimeout(5*time.Second))
	cfg := meter.Config{Bottle: bottle, Agent: "implementer", Upstreams: ups, Daemon: dc}
	if tweak != nil {
		tweak(&cfg)
	}
	p, err := meter.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		p.Close(ctx)
		dc.Close()
	})
	return p, srv
}

// eventually is testutil.Eventually.
var eventually = testutil.Eventually

// fixture is one recorded provider payload of meter/usage with its
// expected counts.
type fixture struct {
	File   string `json:"file"`
	Format string `json:"format"`
	budget.Usage
}

func fixtures(t *testing.T) map[string]fixture {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("usage", "testdata", "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var list []fixture
	if err := json.Unmarshal(b, &list); err != nil {
		t.Fatal(err)
	}
	out := map[string]fixture{}
	for _, f := range list {
		out[f.File] = f
	}
	return out
}

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("usage", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sseEvents splits an SSE recording into its events, each with its
// trailing blank line.
func sseEvents(body []byte) []string {
	var out []string
	for _, e := range strings.SplitAfter(strings.ReplaceAll(string(body), "\r\n", "\n"), "\n\n") {
		if strings.TrimSpace(e) != "" {
			out = append(out, e)
		}
	}
	return out
}

// register registers bottle with budget limits.
func (d *daemon) register(bottle string, limits budget.Limits) {
	d.t.Helper()
	if _, err := d.Client.PutBottle(context.Background(), bottle, api.BottleRequest{Agent: "implementer", Budget: limits}); err != nil {
		d.t.Fatalf("register %s: %v", bottle, err)
	}
}

// newUpstream is a fake provider API.
func newUpstream(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}
