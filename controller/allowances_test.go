package controller_test

import (
	"context"
	"errors"
	"testing"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
)

// allow asks the daemon for an allowance and fails the test on error.
func (d *daemon) allow(req api.AllowanceRequest) api.Allowance {
	d.t.Helper()
	a, err := d.c.Allow(context.Background(), req)
	if err != nil {
		d.t.Fatalf("allow %+v: %v", req, err)
	}
	return a
}

// TestSocketAllowanceSettledByReport: a grant holds tokens at the bottle
// (verdict, bottles, status), the report naming it settles them (held back
// to 0, the usage counted), and a release closes it.
func TestSocketAllowanceSettledByReport(t *testing.T) {
	d := startDaemon(t, nil, nil)
	d.register("b1", api.BottleRequest{Agent: "a", Budget: claude(1000)})
	a := d.allow(api.AllowanceRequest{Bottle: "b1", Provider: "claude", Tokens: 300})
	if a.Granted != 300 || a.Held != 300 || a.Agent != "a" || a.Verdict.Held != 300 || a.Verdict.Remaining != 700 {
		t.Fatalf("got %+v; want 300 granted and held for agent a, 700 remaining", a)
	}
	if v := d.verdict("b1", "", "claude"); v.Held != 300 || v.Remaining != 700 {
		t.Errorf("verdict %+v; want 300 held, 700 remaining", v)
	}
	rep := report("r1", "b1", "a", "claude", 120)
	rep.Allowance = a.ID
	d.ingest(rep)
	if v := d.verdict("b1", "", "claude"); v.Used != 120 || v.Held != 180 || v.Remaining != 700 {
		t.Errorf("after a report of 120: verdict %+v; want 120 used, 180 held, 700 remaining", v)
	}
	if err := d.c.ReleaseAllowance(context.Background(), a.ID); err != nil {
		t.Fatalf("release: %v", err)
	}
	if v := d.verdict("b1", "", "claude"); v.Used != 120 || v.Held != 0 || v.Remaining != 880 {
		t.Errorf("after release: verdict %+v; want 120 used, 0 held, 880 remaining", v)
	}
	if err := d.c.ReleaseAllowance(context.Background(), a.ID); !errors.Is(err, budget.ErrNotFound) {
		t.Errorf("a second release: got %v, want ErrNotFound", err)
	}
}
