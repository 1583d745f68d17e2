package controller_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/client"
	"github.com/bot-bottle/bottlecap/controller"
	"github.com/bot-bottle/bottlecap/daemon/daemontest"
	"github.com/bot-bottle/bottlecap/internal/testutil"
	"github.com/bot-bottle/bottlecap/store"
)

// daemon is a real daemon for one test (package daemontest), with the
// helpers these tests share.
type daemon struct {
	*daemontest.Daemon
	t    *testing.T
	dir  string
	sock string
	db   *store.DB
	c    *client.Client
}

// startDaemon runs a daemon with settings s (nil: defaults) and enforcer
// enf (nil: actions stay pending).
func startDaemon(t *testing.T, s *budget.Settings, enf controller.Enforcer) *daemon {
	t.Helper()
	d := daemontest.Start(t, daemontest.Options{Settings: s, Enforcer: enf})
	return &daemon{Daemon: d, t: t, dir: d.Dir, sock: d.Sock, db: d.DB, c: d.Client}
}

// report is a small complete report.
func report(id, bottle, agent, provider string, tokens int64) api.Report {
	return api.Report{Report: budget.Report{ID: id, Bottle: bottle, Agent: agent, Provider: provider,
		Usage: budget.Usage{Input: tokens}}}
}

func (d *daemon) ingest(reports ...api.Report) api.IngestReply {
	d.t.Helper()
	reply, err := d.c.Ingest(context.Background(), reports)
	if err != nil {
		d.t.Fatalf("ingest: %v", err)
	}
	return reply
}

func (d *daemon) register(slug string, req api.BottleRequest) {
	d.t.Helper()
	if _, err := d.c.PutBottle(context.Background(), slug, req); err != nil {
		d.t.Fatalf("register %s: %v", slug, err)
	}
}

func (d *daemon) verdict(bottle, agent, provider string) budget.Verdict {
	d.t.Helper()
	v, err := d.c.Verdict(context.Background(), client.VerdictQuery{Bottle: bottle, Agent: agent, Provider: provider})
	if err != nil {
		d.t.Fatalf("verdict: %v", err)
	}
	return v
}

// auditCount is how many entries of the audit log are of kind.
func (d *daemon) auditCount(kind string) int {
	d.t.Helper()
	entries, err := d.c.Audit(context.Background(), client.AuditQuery{Limit: 100})
	if err != nil {
		d.t.Fatalf("audit: %v", err)
	}
	n := 0
	for _, e := range entries {
		if e.Kind == kind {
			n++
		}
	}
	return n
}

func (d *daemon) actions(status string) []api.Action {
	d.t.Helper()
	acts, err := d.c.Actions(context.Background(), status)
	if err != nil {
		d.t.Fatalf("actions: %v", err)
	}
	return acts
}

// fakeEnforcer finishes every job at once with the error its fail func
// returns (nil = done), recording what it was given.
type fakeEnforcer struct {
	mu   sync.Mutex
	jobs []controller.Job
	fail func(controller.Job) error
}

func (f *fakeEnforcer) Submit(j controller.Job) {
	f.mu.Lock()
	f.jobs = append(f.jobs, j)
	fail := f.fail
	f.mu.Unlock()
	var err error
	if fail != nil {
		err = fail(j)
	}
	// Finish asynchronously, as a real enforcer does.
	go j.Finished(1, err)
}

func (f *fakeEnforcer) submitted() []controller.Job {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]controller.Job(nil), f.jobs...)
}

// eventually is testutil.Eventually.
var eventually = testutil.Eventually

// raw sends one HTTP request over the socket, for bodies the typed client
// would never send, and returns the status and body.
func (d *daemon) raw(method, path, contentType, body string) (int, string) {
	d.t.Helper()
	return d.rawReader(method, path, contentType, strings.NewReader(body))
}

// rawReader is raw with the body read from r (sent chunked when its length
// is unknown).
func (d *daemon) rawReader(method, path, contentType string, body io.Reader) (int, string) {
	d.t.Helper()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", d.sock)
	}}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequest(method, "http://bottlecap"+path, body)
	if err != nil {
		d.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := hc.Do(req)
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
