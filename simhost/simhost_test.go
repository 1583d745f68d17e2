package simhost_test

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/daemon"
	"github.com/bot-bottle/bottlecap/internal/testutil"
	"github.com/bot-bottle/bottlecap/simhost"
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

// TestHostActsOnCrossedBudgets runs the simulated host fast until a budget
// is crossed and the Recorder has written what it would have done.
func TestHostActsOnCrossedBudgets(t *testing.T) {
	h, err := simhost.Start(context.Background(), simhost.Config{Home: shortHome(t), Speed: 40, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop()
	var out bytes.Buffer
	testutil.Eventually(t, "a demo action in the audit log", func() bool {
		out.Reset()
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // one pass over the audit log
		if err := h.Tail(ctx, &out, time.Second); err != nil {
			t.Fatal(err)
		}
		return strings.Contains(out.String(), "the demo touches no containers")
	})
	if !strings.Contains(out.String(), string(budget.ActCutoff)) && !strings.Contains(out.String(), string(budget.ActFreeze)) {
		t.Errorf("audit log names no cutoff or freeze:\n%s", out.String())
	}
}

// shortHome is a temporary home with a path short enough for a socket.
func shortHome(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "bcsim")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
