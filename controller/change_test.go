package controller_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/client"
	"github.com/bot-bottle/bottlecap/controller"
	"github.com/bot-bottle/bottlecap/store"
)

func (d *daemon) putBudget(kind budget.ScopeKind, id string, limits budget.Limits) {
	d.t.Helper()
	if _, err := d.c.PutBudget(context.Background(), budget.Scope{Kind: kind, ID: id}, limits); err != nil {
		d.t.Fatalf("put budget %s/%s: %v", kind, id, err)
	}
}

// actionsOf lists the journaled actions of one bottle as "kind:status".
func (d *daemon) actionsOf(slug string) []string {
	d.t.Helper()
	var out []string
	for _, a := range d.actions("") {
		if a.Bottle == slug {
			out = append(out, a.Kind+":"+a.Status)
		}
	}
	return out
}

// TestBudgetOnUnseenOrImplicitBottleGoverns: a budget set on a bottle the
// daemon has never seen, or knows from its reports only, governs its
// verdict at once and after a restart, and its crossing acts.
func TestBudgetOnUnseenOrImplicitBottleGoverns(t *testing.T) {
	tests := []struct {
		name   string
		before func(d *daemon) // what the daemon knows of the bottle first
		scope  budget.ScopeKind
		id     string
		want   budget.Scope
		used   int64 // after the crossing
	}{
		{"unseen bottle", func(*daemon) {}, budget.ScopeBottle, "stray-1",
			budget.Scope{Kind: budget.ScopeBottle, ID: "stray-1"}, 120},
		{"implicit bottle", func(d *daemon) { d.ingest(report("m0", "stray-1", "x", "claude", 5)) },
			budget.ScopeBottle, "stray-1", budget.Scope{Kind: budget.ScopeBottle, ID: "stray-1"}, 125},
		{"agent of an implicit bottle", func(d *daemon) { d.ingest(report("m0", "stray-1", "x", "claude", 5)) },
			budget.ScopeAgent, "stray-1/x", budget.Scope{Kind: budget.ScopeAgent, ID: "stray-1/x"}, 125},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := startDaemon(t, nil, nil)
			tt.before(d)
			d.putBudget(tt.scope, tt.id, amounts("claude", 100))
			if v := d.verdict("stray-1", "x", "claude"); v.Scope != tt.want || v.Limit != 100 || !v.Allowed {
				t.Fatalf("before the crossing got %+v, want allowed under %v with limit 100", v, tt.want)
			}
			d.ingest(report("m1", "stray-1", "x", "claude", 120))
			v := d.verdict("stray-1", "x", "claude")
			if v.Allowed || v.State != budget.Pending {
				t.Errorf("after the crossing got %+v, want denied and pending", v)
			}
			if got := d.actionsOf("stray-1"); strings.Join(got, " ") != "cutoff:pending" {
				t.Errorf("got actions %q, want one pending cutoff", got)
			}
			d.Stop()
			d.Restart()
			d.c = d.Client
			v = d.verdict("stray-1", "x", "claude")
			if v.Scope != tt.want || v.Limit != 100 || v.Used != tt.used || v.Allowed {
				t.Errorf("after a restart got %+v, want denied under %v with limit 100", v, tt.want)
			}
			if got := d.actionsOf("stray-1"); len(got) != 1 {
				t.Errorf("after a restart got actions %q, want still one", got)
			}
		})
	}
}

// TestLoweringBelowUsageActsOnce: every way a limit can drop below what
// is used, or usage can come under a budget it was not under, journals
// exactly one action per governed bottle, takes the bottle out of active,
// and a restart does not act again.
func TestLoweringBelowUsageActsOnce(t *testing.T) {
	dev := func(limit int) *budget.Settings {
		s := budget.DefaultSettings()
		s.Bottles["dev"] = budget.Defaults{Budget: budget.Limits{"claude": budget.Lifetime(int64(limit))}}
		return s
	}
	tests := []struct {
		name   string
		change func(d *daemon)
		want   map[string]string // slug -> its actions
	}{
		{"bottle budget by API", func(d *daemon) {
			d.putBudget(budget.ScopeBottle, "b1", amounts("claude", 200))
		}, map[string]string{"b1": "cutoff:done", "b2": ""}},
		{"agent budget by API", func(d *daemon) {
			d.putBudget(budget.ScopeAgent, "b1/impl", amounts("claude", 200))
		}, map[string]string{"b1": "cutoff:done", "b2": ""}},
		{"global budget by API", func(d *daemon) {
			d.putBudget(budget.ScopeGlobal, "-", amounts("claude", 250))
		}, map[string]string{"b1": "", "b2": "cutoff:done"}},
		{"settings reload", func(d *daemon) {
			d.SetSettings(dev(200))
		}, map[string]string{"b1": "cutoff:done", "b2": ""}},
		{"registration", func(d *daemon) {
			d.register("b2", api.BottleRequest{Budget: amounts("claude", 100)})
		}, map[string]string{"b1": "", "b2": "cutoff:done"}},
		{"labels", func(d *daemon) {
			err := d.Server.Discover(context.Background(), controller.Container{ID: "0123456789abcdef", Bottle: "b2",
				Budget: budget.Limits{"claude": budget.Lifetime(100)}})
			if err != nil {
				d.t.Fatal(err)
			}
		}, map[string]string{"b1": "", "b2": "cutoff:done"}},
		{"re-parenting under a parent it exhausts", func(d *daemon) {
			d.putBudget(budget.ScopeBottle, "b1", amounts("claude", 400)) // 300 used: room
			d.register("b2", api.BottleRequest{Parent: "b1"})
		}, map[string]string{"b1": "cutoff:done", "b2": "cutoff:done"}},
		{"several causes at once", func(d *daemon) {
			d.putBudget(budget.ScopeBottle, "b1", amounts("claude", 200))
			d.SetSettings(dev(100))
			d.putBudget(budget.ScopeAgent, "b1/impl", amounts("claude", 10))
			d.ingest(report("more", "b1", "impl", "claude", 10))
		}, map[string]string{"b1": "cutoff:done", "b2": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enf := &fakeEnforcer{}
			d := startDaemon(t, dev(1000), enf)
			d.register("b1", api.BottleRequest{Name: "dev", Agent: "impl"})
			d.register("b2", api.BottleRequest{Agent: "impl"})
			d.ingest(report("m1", "b1", "impl", "claude", 300), report("m2", "b2", "impl", "claude", 150))
			tt.change(d)
			for slug, want := range tt.want {
				if want == "" {
					continue
				}
				eventually(t, slug+" cut off", func() bool { return d.verdict(slug, "impl", "claude").State == budget.CutOff })
			}
			check := func(when string) {
				t.Helper()
				for slug, want := range tt.want {
					if got := strings.Join(d.actionsOf(slug), " "); got != want {
						t.Errorf("%s: %s got actions %q, want %q", when, slug, got, want)
					}
					if v := d.verdict(slug, "impl", "claude"); want != "" && (v.State != budget.CutOff || v.Allowed) {
						t.Errorf("%s: %s got %s allowed %v, want cut off and denied", when, slug, v.State, v.Allowed)
					}
				}
			}
			check("after the change")
			d.Stop()
			d.Restart()
			d.c = d.Client
			check("after a restart")
		})
	}
}

// TestLoweringToTheWarnLevelWarnsOnce: a limit lowered so that usage is
// past its warn threshold records one warn and marks the bottle warned;
// nothing is cut.
func TestLoweringToTheWarnLevelWarnsOnce(t *testing.T) {
	d := startDaemon(t, nil, nil)
	d.register("b1", api.BottleRequest{Budget: amounts("claude", 1000)})
	d.ingest(report("m1", "b1", "", "claude", 85))
	d.putBudget(budget.ScopeBottle, "b1", amounts("claude", 100))
	d.putBudget(budget.ScopeBottle, "b1", amounts("claude", 99))
	warns := d.auditCount("warn")
	if v := d.verdict("b1", "", "claude"); warns != 1 || v.State != budget.Warned || !v.Allowed || len(d.actions("")) != 0 {
		t.Errorf("got %d warns, state %s, allowed %v, %d actions; want 1, warned, allowed, none", warns, v.State, v.Allowed, len(d.actions("")))
	}
}

// TestOperatorRestoreIsNotUndoneByAnUnrelatedChange: a bottle an operator
// restored while over budget is not cut off again by a change that leaves
// that budget as exhausted as it was, but is by one that exhausts another.
func TestOperatorRestoreIsNotUndoneByAnUnrelatedChange(t *testing.T) {
	d := startDaemon(t, nil, &fakeEnforcer{})
	d.register("b1", api.BottleRequest{Agent: "impl", Budget: amounts("claude", 100)})
	d.ingest(report("m1", "b1", "impl", "claude", 150))
	eventually(t, "cut off", func() bool { return d.verdict("b1", "", "claude").State == budget.CutOff })
	if _, err := d.c.Act(context.Background(), "b1", api.ActionRequest{Action: "restore"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "restored", func() bool { return d.verdict("b1", "", "claude").State == budget.Active })
	d.putBudget(budget.ScopeBottle, "b1", amounts("claude", 120)) // still exhausted, as before
	d.register("b1", api.BottleRequest{Name: "renamed"})
	if got := d.actionsOf("b1"); len(got) != 2 {
		t.Fatalf("got actions %q, want the cutoff and the restore only", got)
	}
	d.putBudget(budget.ScopeAgent, "b1/impl", amounts("claude", 50)) // a budget newly exhausted
	eventually(t, "cut off again", func() bool { return d.verdict("b1", "", "claude").State == budget.CutOff })
	if got := d.actionsOf("b1"); len(got) != 3 {
		t.Errorf("got actions %q, want a second cutoff", got)
	}
}

// flakyIngester fails its first n commits, before anything reaches the
// ledger, as a commit that fails (or a daemon that dies before it) does;
// then it commits through the real group-commit writer.
type flakyIngester struct {
	w    *store.Writer
	fail atomic.Int32
}

func (f *flakyIngester) SubmitWith(ctx context.Context, reports []budget.Report, bottles []budget.Bottle) ([]budget.AppendResult, error) {
	if f.fail.Add(-1) >= 0 {
		return nil, fmt.Errorf("disk on fire: %w", budget.ErrUnavailable)
	}
	return f.w.SubmitWith(ctx, reports, bottles)
}

// TestImplicitBottlesAreStoredWithTheirReports: a bottle registered by its
// first report is stored by the commit of that report — a failed commit
// leaves neither the bottle nor the report in the ledger, and the next
// report naming it (a retry, or another) stores both.
func TestImplicitBottlesAreStoredWithTheirReports(t *testing.T) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "bc")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	db, err := store.Open(ctx, filepath.Join(dir, "bot-bottle.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	w := store.NewWriter(db)
	defer w.Close()
	ing := &flakyIngester{w: w}
	ing.fail.Store(1)
	srv, err := controller.New(ctx, controller.Config{Ledger: db, Ingester: ing})
	if err != nil {
		t.Fatal(err)
	}
	l, err := controller.Listen(filepath.Join(dir, "s.sock"))
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Shutdown(ctx)
	c := client.New(filepath.Join(dir, "s.sock"), client.WithRetry(0))
	defer c.Close()

	if _, err := c.Ingest(ctx, []api.Report{report("m1", "stray-1", "x", "claude", 10)}); !errors.Is(err, budget.ErrUnavailable) {
		t.Fatalf("first ingest: got %v, want ErrUnavailable", err)
	}
	if _, err := db.Bottle(ctx, "stray-1"); !errors.Is(err, budget.ErrNotFound) {
		t.Errorf("after the failed commit got bottle stray-1 stored (%v), want none", err)
	}
	if totals, _ := db.Totals(ctx); len(totals) != 0 {
		t.Errorf("after the failed commit got totals %+v, want none", totals)
	}
	if _, err := c.Ingest(ctx, []api.Report{report("m2", "stray-1", "x", "claude", 5)}); err != nil {
		t.Fatal(err)
	}
	b, err := db.Bottle(ctx, "stray-1")
	if err != nil || !b.Implicit || b.Agent != "x" {
		t.Errorf("after the next commit got %+v (%v), want the implicit bottle stored", b, err)
	}
	if totals, _ := db.Totals(ctx); len(totals) != 1 || totals[0].Counted != 5 {
		t.Errorf("after the next commit got totals %+v, want the one committed report", totals)
	}
}
