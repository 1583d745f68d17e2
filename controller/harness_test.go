package controller_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/client"
	"github.com/bot-bottle/bottlecap/controller"
	"github.com/bot-bottle/bottlecap/store"
)

// daemon is a real controller on a real unix socket over a real SQLite
// ledger, with a client dialling it.
type daemon struct {
	t        *testing.T
	dir      string
	sock     string
	settings *budget.Settings
	enf      controller.Enforcer
	db       *store.DB
	writer   *store.Writer
	srv      *controller.Server
	served   chan error
	c        *client.Client
}

// startDaemon runs a daemon in a short temp dir (unix socket paths are
// limited to 108 bytes, too short for t.TempDir under some runners).
func startDaemon(t *testing.T, s *budget.Settings, enf controller.Enforcer) *daemon {
	t.Helper()
	dir, err := os.MkdirTemp("", "bc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	d := &daemon{t: t, dir: dir, sock: filepath.Join(dir, "run", "bottlecap.sock"), settings: s, enf: enf}
	d.start()
	t.Cleanup(d.stop)
	return d
}

func (d *daemon) start() {
	d.t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(d.dir, "bot-bottle.db"))
	if err != nil {
		d.t.Fatal(err)
	}
	d.db, d.writer = db, store.NewWriter(db)
	d.srv, err = controller.New(ctx, controller.Config{
		Store: db, Ingester: d.writer, Settings: d.settings, Enforcer: d.enf,
		RawParser: nil, Version: "test", StorePath: db.Path(), Socket: d.sock,
	})
	if err != nil {
		d.t.Fatal(err)
	}
	l, err := controller.Listen(d.sock)
	if err != nil {
		d.t.Fatal(err)
	}
	d.served = make(chan error, 1)
	go func() { d.served <- d.srv.Serve(l) }()
	d.c = client.New(d.sock, client.WithRetry(0))
}

func (d *daemon) stop() {
	if d.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.srv.Shutdown(ctx); err != nil {
		d.t.Errorf("shutdown: %v", err)
	}
	if err := <-d.served; err != nil {
		d.t.Errorf("serve: %v", err)
	}
	d.writer.Close()
	d.db.Close()
	d.c.Close()
	d.srv = nil
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

// eventually polls cond until it holds or a generous deadline passes; it
// waits for asynchronous outcomes, and asserts nothing about time.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never happened: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// raw sends one HTTP request over the socket, for bodies the typed client
// would never send, and returns the status and body.
func (d *daemon) raw(method, path, contentType, body string) (int, string) {
	d.t.Helper()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", d.sock)
	}}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequest(method, "http://bottlecap"+path, strings.NewReader(body))
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
