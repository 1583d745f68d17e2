package controller_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/controller"
)

// lifecycleDaemon runs a daemon whose bottle b1 (name dev, agent impl)
// has a limit from every source: settings (global claude 50M/month, dev
// claude 5M/day, agent rev claude 200k), its registration (codex 1M, rev
// claude 100k), a label (pi 7) and runtime (claude 1M).
func lifecycleDaemon(t *testing.T) *daemon {
	t.Helper()
	s := budget.DefaultSettings()
	s.Budget = budget.Limits{"claude": {{Tokens: 50_000_000, Window: budget.MonthWindow}}}
	s.Bottles["dev"] = budget.Defaults{Budget: budget.Limits{"claude": {{Tokens: 5_000_000, Window: budget.DayWindow}}}}
	s.Agents["rev"] = budget.Defaults{Budget: amounts("claude", 200_000)}
	d := startDaemon(t, s, nil)
	d.register("b1", api.BottleRequest{Name: "dev", Agent: "impl", Budget: amounts("codex", 1_000_000),
		AgentBudgets: map[string]budget.Limits{"rev": amounts("claude", 100_000)}})
	if err := d.Server.Discover(context.Background(), controller.Container{ID: "c1", Bottle: "b1", Budget: amounts("pi", 7)}); err != nil {
		t.Fatal(err)
	}
	d.putBudget(budget.ScopeBottle, "b1", amounts("claude", 1_000_000))
	return d
}

// listingAfterRestart restarts the daemon and holds its listing to want:
// every limit keeps its source across a restart.
func (d *daemon) listingAfterRestart(want []string) {
	d.t.Helper()
	d.Stop()
	d.Restart()
	d.c = d.Client
	if got := d.listing(); !slices.Equal(got, want) {
		d.t.Errorf("after a restart:\n got %q\nwant %q", got, want)
	}
}

// listing is GET /v1/budgets as "scope/id provider limit/window source
// [overridden]" lines.
func (d *daemon) listing() []string {
	d.t.Helper()
	status, body := d.raw("GET", "/v1/budgets", "", "")
	var all []api.BudgetLimit
	if err := json.Unmarshal([]byte(body), &all); status != 200 || err != nil {
		d.t.Fatalf("GET /v1/budgets: %d %s (%v)", status, body, err)
	}
	out := make([]string, len(all))
	for i, l := range all {
		out[i] = fmt.Sprintf("%s/%s %s %d/%s %s", l.Scope, l.ID, l.Provider, l.Limit, l.Window, l.Source)
		if l.Overridden {
			out[i] += " overridden"
		}
	}
	return out
}

// TestBudgetListingOverTheSocket: GET /v1/budgets lists every limit of
// every scope, in force or overridden, with its source; a restart keeps
// each limit's source.
func TestBudgetListingOverTheSocket(t *testing.T) {
	d := lifecycleDaemon(t)
	want := []string{
		"global/- claude 50000000/month settings",
		"bottle/b1 claude 1000000/life runtime",
		"bottle/b1 claude 5000000/day settings overridden",
		"bottle/b1 codex 1000000/life registration",
		"bottle/b1 pi 7/life label",
		"agent/b1/rev claude 100000/life registration",
		"agent/b1/rev claude 200000/life settings overridden",
	}
	if got := d.listing(); !slices.Equal(got, want) {
		t.Errorf("listing:\n got %q\nwant %q", got, want)
	}
	d.listingAfterRestart(want)
	if v := d.verdict("b1", "impl", "claude"); v.Limit != 1_000_000 {
		t.Errorf("after a restart the gate has %d, want the runtime 1000000", v.Limit)
	}
}

// TestBudgetDeleteOverTheSocket: DELETE /v1/budgets/{scope}/{id} removes
// runtime and registration limits, refuses settings and label limits by
// name (409), answers 404 for what is not there and 400 for a bad
// request; what it removed stays removed after a restart.
func TestBudgetDeleteOverTheSocket(t *testing.T) {
	d := lifecycleDaemon(t)
	tests := []struct {
		name, path string
		status     int
		want       string
	}{
		{"runtime claude", "/v1/budgets/bottle/b1?provider=claude", 200, `"removed":[{"scope":"bottle","id":"b1","provider":"claude","limit":1000000,"window":"life","source":"runtime"`},
		{"claude again: settings", "/v1/budgets/bottle/b1?provider=claude", 409,
			"claude at bottle/b1 comes from settings.yml (bottles: dev: budget:); change it there"},
		{"a label's", "/v1/budgets/bottle/b1?provider=pi", 409, "pi at bottle/b1 comes from the label bot-bottle.budget on its containers"},
		{"settings and a label, nothing else", "/v1/budgets/bottle/b1?provider=claude&provider=pi", 409, "claude at bottle/b1 comes from settings.yml"},
		{"no such provider", "/v1/budgets/bottle/b1?provider=gemini", 404, "no gemini limit at bottle/b1"},
		{"unknown bottle", "/v1/budgets/bottle/nobody", 404, `bottle \"nobody\"`},
		{"settings only at global", "/v1/budgets/global/-", 409, "claude at global comes from settings.yml (budget:)"},
		{"bad scope", "/v1/budgets/team/x", 400, "scope"},
		{"empty provider", "/v1/budgets/bottle/b1?provider=", 400, "provider"},
		{"unknown parameter", "/v1/budgets/bottle/b1?scope=x", 400, `query parameter \"scope\"`},
		{"the agent's registration", "/v1/budgets/agent/b1/rev", 200, `"limits":{"claude":200000}`},
		{"every removable provider", "/v1/budgets/bottle/b1", 200, `"removed":[{"scope":"bottle","id":"b1","provider":"codex"`},
	}
	for _, tt := range tests {
		status, body := d.raw("DELETE", tt.path, "", "")
		if status != tt.status || !strings.Contains(body, tt.want) {
			t.Errorf("%s: got %d %s, want %d containing %s", tt.name, status, body, tt.status, tt.want)
		}
	}
	want := []string{
		"global/- claude 50000000/month settings",
		"bottle/b1 claude 5000000/day settings",
		"bottle/b1 pi 7/life label",
		// Agent rev's settings limit still applies to its reports, but b1
		// no longer names rev: no registration, runtime limit or usage.
	}
	if got := d.listing(); !slices.Equal(got, want) {
		t.Errorf("listing after the removals:\n got %q\nwant %q", got, want)
	}
	d.listingAfterRestart(want)
	if n := d.auditCount("budget"); n != 4 {
		t.Errorf("%d budget audit entries, want 4: the runtime limit set, then three removals", n)
	}
}

// TestForgettingABottleForgetsItsRuntimeLimits: bottle rm takes the
// runtime limits of the bottle and its agents with it, in memory and in
// the ledger; the bottle registered again starts from its registration.
func TestForgettingABottleForgetsItsRuntimeLimits(t *testing.T) {
	d := startDaemon(t, nil, nil)
	d.register("b1", api.BottleRequest{Agent: "impl"})
	d.putBudget(budget.ScopeBottle, "b1", amounts("claude", 100))
	d.putBudget(budget.ScopeAgent, "b1/impl", amounts("claude", 50))
	if err := d.c.DeleteBottle(context.Background(), "b1"); err != nil {
		t.Fatal(err)
	}
	d.register("b1", api.BottleRequest{Agent: "impl", Budget: amounts("codex", 9)})
	want := []string{"bottle/b1 codex 9/life registration"}
	if got := d.listing(); !slices.Equal(got, want) {
		t.Errorf("listing:\n got %q\nwant %q", got, want)
	}
	d.listingAfterRestart(want)
}
