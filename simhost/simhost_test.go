package simhost_test

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/controller"
	"github.com/bot-bottle/bottlecap/daemon"
	"github.com/bot-bottle/bottlecap/daemon/daemontest"
	"github.com/bot-bottle/bottlecap/internal/testutil"
	"github.com/bot-bottle/bottlecap/settings"
	"github.com/bot-bottle/bottlecap/simhost"
	"github.com/bot-bottle/bottlecap/store"
	"github.com/bot-bottle/bottlecap/tui"
)

// TestResponseNormalisesToItsUsage parses each provider's simulated
// response as the daemon parses a sidecar's raw report: the counts it
// finds must be plausible (the generator and the provider formats agree),
// and the id must be the response's own.
func TestResponseNormalisesToItsUsage(t *testing.T) {
	for _, p := range []string{"claude", "codex"} {
		t.Run(p, func(t *testing.T) {
			id, host, body := simhost.Response(p)
			got, err := daemon.ParseRaw("auto", body)
			if err != nil {
				t.Fatalf("parse %s: %v", body, err)
			}
			if got.ID != id || !got.Complete {
				t.Errorf("parsed id %q complete %v, want %q complete", got.ID, got.Complete, id)
			}
			if host != simhost.Hosts[p] {
				t.Errorf("host %q, want %q", host, simhost.Hosts[p])
			}
			u := got.Usage
			if u.Input <= 0 || u.Output <= 0 || u.CacheRead <= u.Input {
				t.Errorf("usage %+v: want input, output and a cache read larger than the fresh input", u)
			}
			if p == "codex" && (u.Reasoning <= 0 || u.Reasoning > u.Output) {
				t.Errorf("usage %+v: want reasoning within the output", u)
			}
		})
	}
}

// TestFleetShape: trees of ten, every parent registered before its
// children, two providers per bottle, deterministic.
func TestFleetShape(t *testing.T) {
	now := time.Date(2026, 11, 21, 20, 0, 0, 0, time.UTC)
	in := simhost.Fleet(25, now)
	if len(in.Bottles) != 25 || len(in.Totals) != 50 || len(in.Buckets) != 50 {
		t.Fatalf("got %d bottles, %d totals, %d buckets; want 25, 50, 50", len(in.Bottles), len(in.Totals), len(in.Buckets))
	}
	seen := map[string]bool{}
	roots := 0
	for _, b := range in.Bottles {
		if b.Parent == "" {
			roots++
		} else if !seen[b.Parent] {
			t.Errorf("%s comes before its parent %s", b.Slug, b.Parent)
		}
		seen[b.Slug] = true
	}
	if roots != 3 {
		t.Errorf("got %d roots, want 3 (one per ten bottles)", roots)
	}
	if again := simhost.Fleet(25, now); again.Totals[17].Counted != in.Totals[17].Counted {
		t.Errorf("Fleet is not deterministic: %+v then %+v", in.Totals[17], again.Totals[17])
	}
	if snap := tui.Build(in); len(snap.Rows) != 25 {
		t.Errorf("the dashboard builds %d rows from the fleet, want 25", len(snap.Rows))
	}
}

// TestReportIsValid: a generated report passes the domain's own checks.
func TestReportIsValid(t *testing.T) {
	for range 100 {
		r := simhost.Report()
		if err := r.Usage.Validate(); err != nil {
			t.Fatalf("report %+v: %v", r, err)
		}
		if err := budget.ValidateSlug("bottle", r.Bottle); err != nil {
			t.Fatalf("report %+v: %v", r, err)
		}
		if r.Counted != r.Usage.Total() {
			t.Fatalf("report counted %d, want its usage's total %d", r.Counted, r.Usage.Total())
		}
	}
}

// TestSidecarsCrossBudgets runs the sidecars fast against a real daemon
// on the simulated host's settings until a budget is crossed: registration,
// the gate, the raw provider reports and the normalisation all work
// together. Without an enforcer the action stays pending.
func TestSidecarsCrossBudgets(t *testing.T) {
	st, err := settings.Parse("settings.yml", []byte(simhost.Settings))
	if err != nil {
		t.Fatal(err)
	}
	d := daemontest.Start(t, daemontest.Options{Settings: st, RawParser: daemon.ParseRaw})
	sims, err := simhost.StartSidecars(context.Background(), d.Sock, 40)
	if err != nil {
		t.Fatal(err)
	}
	defer sims.Stop()
	var out bytes.Buffer
	testutil.Eventually(t, "a budget exhausted and an action pending", func() bool {
		out.Reset()
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // one pass over the audit log
		if err := simhost.Tail(ctx, d.DB, &out, time.Second); err != nil {
			t.Fatal(err)
		}
		return strings.Contains(out.String(), "exhausted") && strings.Contains(out.String(), "action_pending")
	})
	for _, b := range simhost.Bottles {
		if b.Register && !strings.Contains(out.String(), b.Slug+" ") {
			t.Errorf("audit log does not show %s registered:\n%s", b.Slug, out.String())
		}
	}
}

func TestStartSidecarsRefusesNoSpeed(t *testing.T) {
	if _, err := simhost.StartSidecars(context.Background(), "/nonexistent.sock", 0); err == nil {
		t.Error("StartSidecars at speed 0 succeeded, want an error")
	}
}

// TestRecorderFinishesWithAnAuditEntry: the Recorder touches nothing but
// the audit log, and finishes the job as done after one attempt.
func TestRecorderFinishesWithAnAuditEntry(t *testing.T) {
	db, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "bot-bottle.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rec := simhost.NewRecorder(db, 0)
	defer rec.Stop()
	type result struct {
		attempts int
		err      error
	}
	done := make(chan result, 1)
	rec.Submit(controller.Job{Action: budget.Action{ID: 7, Bottle: "b1", Kind: budget.ActFreeze},
		Finished: func(n int, err error) { done <- result{n, err} }})
	if got := <-done; got.attempts != 1 || got.err != nil {
		t.Fatalf("finished after %d attempt(s) with %v, want 1 and nil", got.attempts, got.err)
	}
	entries, err := db.Audit(context.Background(), "b1", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Kind != "demo" || !strings.Contains(entries[0].Detail, "would freeze") {
		t.Errorf("audit %+v, want one demo entry saying it would freeze", entries)
	}
}
