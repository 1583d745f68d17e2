package controller_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/controller"
)

func amounts(kv ...any) budget.Limits {
	m := budget.Limits{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i].(string)] = budget.Lifetime(int64(kv[i+1].(int)))
	}
	return m
}

// tree registers root (claude 500) → mid → leaf (claude 1000, agent impl
// 100) and a loner, and sets a global claude budget of 2000.
func tree(t *testing.T, d *daemon) {
	t.Helper()
	d.register("root", api.BottleRequest{Agent: "impl", Budget: amounts("claude", 500)})
	d.register("mid", api.BottleRequest{Agent: "impl", Parent: "root"})
	d.register("leaf", api.BottleRequest{Agent: "impl", Parent: "mid", Budget: amounts("claude", 1000),
		AgentBudgets: map[string]budget.Limits{"impl": amounts("claude", 100)}})
	d.register("loner", api.BottleRequest{Agent: "impl"})
	if _, err := d.c.PutBudget(context.Background(), budget.Scope{Kind: budget.ScopeGlobal, ID: "-"}, amounts("claude", 2000)); err != nil {
		t.Fatal(err)
	}
}

func TestPrecedenceOnLiveData(t *testing.T) {
	tests := []struct {
		name                    string
		prec                    budget.Precedence
		reports                 []api.Report
		bottle, agent, provider string
		wantScope               string
		wantAllowed             bool
	}{
		{"nearest agent", budget.Nearest, []api.Report{report("a", "leaf", "impl", "claude", 50)},
			"leaf", "impl", "claude", "agent leaf/impl", true},
		{"nearest bottle for another agent", budget.Nearest, []api.Report{report("a", "leaf", "rev", "claude", 400)},
			"leaf", "rev", "claude", "bottle leaf", true},
		{"nearest parent covers its subtree", budget.Nearest, []api.Report{report("a", "leaf", "rev", "claude", 550)},
			"mid", "impl", "claude", "parent root", false},
		{"nearest global for a loner", budget.Nearest, []api.Report{report("a", "loner", "impl", "claude", 10)},
			"loner", "impl", "claude", "global -", true},
		{"strict parent trips before the bottle", budget.Strict, []api.Report{report("a", "leaf", "rev", "claude", 550)},
			"leaf", "rev", "claude", "parent root", false},
		{"strict global trips a bottle with room", budget.Strict,
			[]api.Report{report("a", "loner", "impl", "claude", 1990), report("b", "leaf", "rev", "claude", 20)},
			"leaf", "rev", "claude", "global -", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := budget.DefaultSettings()
			s.Precedence = tt.prec
			d := startDaemon(t, s, nil)
			tree(t, d)
			d.ingest(tt.reports...)
			v := d.verdict(tt.bottle, tt.agent, tt.provider)
			if got := string(v.Kind) + " " + v.ID; got != tt.wantScope || v.Allowed != tt.wantAllowed {
				t.Errorf("got %s allowed %v (%s), want %s allowed %v", got, v.Allowed, v.Reason, tt.wantScope, tt.wantAllowed)
			}
		})
	}
}

func TestCrossingJournalsOneActionPerGovernedBottle(t *testing.T) {
	d := startDaemon(t, nil, nil)
	tree(t, d)
	d.ingest(report("a", "leaf", "rev", "claude", 450))
	if acts := d.actions(""); len(acts) != 0 {
		t.Fatalf("got %d actions below the limit, want none", len(acts))
	}
	// root's 500 is crossed by a grandchild: under nearest it governs root
	// and mid (leaf has its own budget).
	reply := d.ingest(report("b", "leaf", "rev", "claude", 60), report("c", "leaf", "rev", "claude", 60))
	d.ingest(report("d", "mid", "impl", "claude", 5))
	var got []string
	for _, a := range d.actions("") {
		got = append(got, a.Bottle+":"+a.Kind+":"+a.Status)
	}
	if want := "mid:cutoff:pending root:cutoff:pending"; strings.Join(got, " ") != want {
		t.Errorf("got actions %q, want %q", got, want)
	}
	if v := reply.Verdicts; reply.Accepted != 2 || len(v) != 1 || !v[0].Allowed || v[0].ID != "leaf" {
		t.Errorf("got reply %+v, want 2 accepted and leaf still allowed under its own budget", reply)
	}
	for _, slug := range []string{"root", "mid"} {
		if v := d.verdict(slug, "", "claude"); v.Allowed || v.State != budget.Pending {
			t.Errorf("%s: got allowed %v state %s, want denied and pending with no enforcer", slug, v.Allowed, v.State)
		}
	}
}

func TestWarnRecordedOnce(t *testing.T) {
	d := startDaemon(t, nil, nil)
	d.register("b1", api.BottleRequest{Budget: amounts("claude", 100)})
	d.ingest(report("a", "b1", "", "claude", 85), report("b", "b1", "", "claude", 5))
	d.ingest(report("c", "b1", "", "claude", 5))
	warns := d.auditCount("warn")
	if v := d.verdict("b1", "", "claude"); warns != 1 || v.State != budget.Warned || !v.Allowed {
		t.Errorf("got %d warn entries, state %s allowed %v; want 1, warned, allowed", warns, v.State, v.Allowed)
	}
}

func TestBudgetEndpoints(t *testing.T) {
	d := startDaemon(t, nil, nil)
	d.register("b1", api.BottleRequest{Agent: "impl"})
	tests := []struct {
		name, method, path, body string
		status                   int
		want                     string
	}{
		{"set global", "PUT", "/v1/budgets/global/-", `{"claude":"5M"}`, 200, `"claude":5000000`},
		{"set bottle", "PUT", "/v1/budgets/bottle/b1", `{"codex":500000}`, 200, `"codex":500000`},
		{"set agent", "PUT", "/v1/budgets/agent/b1/impl", `{"claude":"200k"}`, 200, `"claude":200000`},
		{"get agent", "GET", "/v1/budgets/agent/b1/impl", ``, 200, `"claude":200000`},
		{"list", "GET", "/v1/budgets", ``, 200, `"scope":"agent","id":"b1/impl"`},
		{"unknown scope", "PUT", "/v1/budgets/team/x", `{"claude":1}`, 400, "scope"},
		{"unseen bottle", "PUT", "/v1/budgets/bottle/unseen-1", `{"claude":1}`, 200, `"claude":1`},
		{"agent without agent", "PUT", "/v1/budgets/agent/b1", `{"claude":1}`, 400, "slug>/<agent>"},
		{"bad amount", "PUT", "/v1/budgets/global/-", `{"claude":"lots"}`, 400, "claude"},
		{"negative amount", "PUT", "/v1/budgets/global/-", `{"claude":-5}`, 400, "claude"},
		{"empty", "PUT", "/v1/budgets/global/-", `{}`, 400, "at least one provider"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := d.raw(tt.method, tt.path, "application/json", tt.body)
			if status != tt.status || !strings.Contains(body, tt.want) {
				t.Errorf("got %d %s, want %d containing %s", status, body, tt.status, tt.want)
			}
		})
	}
}

func TestBottleEndpoints(t *testing.T) {
	d := startDaemon(t, nil, nil)
	tests := []struct {
		name, method, path, body string
		status                   int
		want                     string
	}{
		{"register", "PUT", "/v1/bottles/p1", `{"agent":"impl","name":"dev","budget":{"claude":"1M"},"shutdown":"freeze"}`, 200, `"shutdown":"freeze"`},
		{"register child", "PUT", "/v1/bottles/c1", `{"parent":"p1"}`, 200, `"parent":"p1"`},
		{"cycle refused", "PUT", "/v1/bottles/p1", `{"parent":"c1"}`, 409, "cycle"},
		{"bad policy", "PUT", "/v1/bottles/p2", `{"shutdown":"explode"}`, 400, "shutdown"},
		{"bad slug", "PUT", "/v1/bottles/-x", `{}`, 400, "slug"},
		{"unknown field", "PUT", "/v1/bottles/p2", `{"budgets":{}}`, 400, "budgets"},
		{"show", "GET", "/v1/bottles/p1", ``, 200, `"scope":"bottle","scope_id":"p1","limit":1000000`},
		{"list", "GET", "/v1/bottles", ``, 200, `"slug":"c1"`},
		{"show unknown", "GET", "/v1/bottles/nope", ``, 404, "nope"},
		{"forget", "DELETE", "/v1/bottles/c1", ``, 204, ``},
		{"forget again", "DELETE", "/v1/bottles/c1", ``, 404, "c1"},
		{"no such endpoint", "GET", "/v1/nothing", ``, 404, "no such endpoint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := d.raw(tt.method, tt.path, "application/json", tt.body)
			if status != tt.status || !strings.Contains(body, tt.want) {
				t.Errorf("got %d %s, want %d containing %s", status, body, tt.status, tt.want)
			}
		})
	}
}

func TestOperatorActions(t *testing.T) {
	enf := &fakeEnforcer{}
	d := startDaemon(t, nil, enf)
	d.register("b1", api.BottleRequest{Agent: "impl", Containers: []string{"0123456789ab"}})
	ctx := context.Background()
	if _, err := d.c.Act(ctx, "b1", api.ActionRequest{Action: "restore"}); !errors.Is(err, budget.ErrConflict) {
		t.Errorf("restore of an active bottle: got %v, want ErrConflict", err)
	}
	if _, err := d.c.Act(ctx, "nope", api.ActionRequest{Action: "cutoff"}); !errors.Is(err, budget.ErrNotFound) {
		t.Errorf("unknown bottle: got %v, want ErrNotFound", err)
	}
	if _, err := d.c.Act(ctx, "b1", api.ActionRequest{Action: "explode"}); !errors.Is(err, budget.ErrInvalid) {
		t.Errorf("unknown action: got %v, want ErrInvalid", err)
	}
	act, err := d.c.Act(ctx, "b1", api.ActionRequest{Action: "cutoff", Reason: "runaway loop"})
	if err != nil || act.Status != "pending" || !act.Operator {
		t.Fatalf("got %+v %v, want a pending operator action", act, err)
	}
	eventually(t, "cutoff done", func() bool { return d.verdict("b1", "", "claude").State == budget.CutOff })
	if jobs := enf.submitted(); len(jobs) != 1 || jobs[0].Containers[0] != "0123456789ab" {
		t.Errorf("got jobs %+v, want one with the registered container", jobs)
	}
	if v := d.verdict("b1", "", "claude"); v.Allowed || !strings.Contains(v.Reason, "runaway loop") {
		t.Errorf("got %+v, want denied naming the operator's reason", v)
	}
	if _, err := d.c.Act(ctx, "b1", api.ActionRequest{Action: "restore"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "restored", func() bool { return d.verdict("b1", "", "claude").State == budget.Active })
	if acts := d.actions("done"); len(acts) != 2 {
		t.Errorf("got %d done actions, want 2", len(acts))
	}
}

// TestActionByID: GET /v1/actions/{id} follows one action from pending to
// its outcome over the socket; an unknown id is 404, a malformed one 400.
func TestActionByID(t *testing.T) {
	enf := &fakeEnforcer{fail: func(j controller.Job) error {
		if j.Action.Kind == budget.ActKill {
			return errors.New("engine says no")
		}
		return nil
	}}
	d := startDaemon(t, nil, enf)
	d.register("b1", api.BottleRequest{})
	ctx := context.Background()
	act, err := d.c.Act(ctx, "b1", api.ActionRequest{Action: "cutoff", Reason: "runaway"})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "cutoff done", func() bool {
		a, err := d.c.Action(ctx, act.ID)
		return err == nil && a.Status == "done"
	})
	if a, _ := d.c.Action(ctx, act.ID); a.ID != act.ID || a.Kind != "cutoff" || a.Bottle != "b1" || a.Reason != "runaway" || !a.Operator {
		t.Errorf("got %+v, want b1's operator cutoff", a)
	}
	kill, err := d.c.Act(ctx, "b1", api.ActionRequest{Action: "kill"})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "kill failed", func() bool {
		a, err := d.c.Action(ctx, kill.ID)
		return err == nil && a.Status == "failed" && a.LastError == "engine says no"
	})
	if _, err := d.c.Action(ctx, 999); !errors.Is(err, budget.ErrNotFound) {
		t.Errorf("unknown id: got %v, want ErrNotFound", err)
	}
	for _, bad := range []string{"x", "0", "-3"} {
		if status, body := d.raw("GET", "/v1/actions/"+bad, "", ""); status != 400 || !strings.Contains(body, "want a positive integer") {
			t.Errorf("GET /v1/actions/%s: got %d %s, want 400 naming the id", bad, status, body)
		}
	}
}

func TestFailedActionKeepsBottleDenied(t *testing.T) {
	enf := &fakeEnforcer{fail: func(controller.Job) error { return errors.New("engine says no") }}
	d := startDaemon(t, nil, enf)
	d.register("b1", api.BottleRequest{})
	if _, err := d.c.Act(context.Background(), "b1", api.ActionRequest{Action: "kill"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "action failed", func() bool { return len(d.actions("failed")) == 1 })
	// The journal takes the outcome just before the book does (and other
	// readers wait on the book): wait for the gate to say it, then hold
	// the verdict to all of it.
	eventually(t, "the gate names the failure", func() bool {
		return strings.Contains(d.verdict("b1", "", "claude").Reason, "engine says no")
	})
	v := d.verdict("b1", "", "claude")
	if v.Allowed || v.State != budget.Pending || !strings.Contains(v.Reason, "engine says no") {
		t.Errorf("got %+v, want denied, pending, naming the failure", v)
	}
}

func TestRaisingBudgetRestoresABudgetCutoffOnly(t *testing.T) {
	d := startDaemon(t, nil, &fakeEnforcer{})
	d.register("auto", api.BottleRequest{Budget: amounts("claude", 100)})
	d.register("manual", api.BottleRequest{Budget: amounts("claude", 100)})
	d.ingest(report("a", "auto", "", "claude", 150))
	ctx := context.Background()
	if _, err := d.c.Act(ctx, "manual", api.ActionRequest{Action: "cutoff"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "both cut off", func() bool {
		return d.verdict("auto", "", "claude").State == budget.CutOff && d.verdict("manual", "", "claude").State == budget.CutOff
	})
	for _, slug := range []string{"auto", "manual"} {
		if _, err := d.c.PutBudget(ctx, budget.Scope{Kind: budget.ScopeBottle, ID: slug}, amounts("claude", 1000)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "auto restored", func() bool { return d.verdict("auto", "", "claude").State == budget.Active })
	if v := d.verdict("manual", "", "claude"); v.State != budget.CutOff {
		t.Errorf("got manual %s, want it still cut off: an operator's cutoff is lifted only by an operator", v.State)
	}
}
