package client_test

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/client"
	"github.com/bot-bottle/bottlecap/client/clienttest"
)

var ts0 = time.Date(2026, 11, 21, 20, 0, 0, 0, time.UTC)

func report(id string, in, out int64) api.Report {
	return api.Report{Report: budget.Report{
		ID: id, Bottle: "dev-1", Agent: "implementer", Provider: "claude",
		Usage: budget.Usage{Input: in, Output: out}, TS: ts0,
	}}
}

var verdict = budget.Verdict{
	Allowed: true, Bottle: "dev-1", Agent: "implementer", Provider: "claude",
	Scope: budget.Scope{Kind: budget.ScopeBottle, ID: "dev-1"}, Limit: 1000000,
	Used: 412000, Remaining: 588000, State: budget.Active,
}

var bottle = api.Bottle{
	Bottle:   budget.Bottle{Slug: "dev-1", Agent: "implementer", State: budget.Active, CreatedAt: ts0},
	Usage:    map[string]int64{"claude": 412000},
	Verdicts: []budget.Verdict{verdict},
}

// routeCase is one call: what the fake answers, what the client must send,
// and what it must decode.
type routeCase struct {
	name    string
	pattern string
	status  int
	reply   any
	call    func(context.Context, *client.Client) (any, error)
	method  string
	path    string
	query   string
	ctype   string
	body    string // the JSON or NDJSON the client must send; "" for none
	want    any
}

func routeCases() []routeCase {
	action := api.Action{ID: 7, Bottle: "dev-1", Kind: "cutoff", Reason: "runaway", Operator: true, Status: "pending", CreatedAt: ts0, UpdatedAt: ts0}
	bud := api.Budget{Scope: "agent", ID: "dev-1/reviewer", Limits: budget.Limits{"claude": budget.Lifetime(200000)},
		Sources: []api.BudgetLimit{
			{Scope: "agent", ID: "dev-1/reviewer", Provider: "claude", Limit: 200000, Window: "life", Source: "runtime", Origin: "the runtime API"},
			{Scope: "agent", ID: "dev-1/reviewer", Provider: "claude", Limit: 50000, Window: "day", Source: "settings",
				Origin: "settings.yml (agents: reviewer: budget:)", Overridden: true},
		}}
	entry := api.AuditEntry{Seq: 3, TS: ts0, Kind: "cutoff", Bottle: "dev-1", Detail: "by operator", PrevHash: "aa", Hash: "bb"}
	status := api.Status{Version: "0.1.0", PID: 42, StartedAt: ts0, Bottles: 1, Reports: 9, Global: []budget.Verdict{verdict}}
	ingest := api.IngestReply{Accepted: 1, Duplicates: 1, Verdicts: []budget.Verdict{verdict}}
	return []routeCase{
		{name: "Ingest one", pattern: "POST /v1/usage", status: 200, reply: ingest,
			call: func(ctx context.Context, c *client.Client) (any, error) {
				return c.Ingest(ctx, []api.Report{report("msg_1", 656, 74)})
			},
			method: "POST", path: "/v1/usage", ctype: "application/json",
			body: `{"id":"msg_1","bottle":"dev-1","agent":"implementer","provider":"claude","input_tokens":656,"cache_read_tokens":0,"cache_write_tokens":0,"output_tokens":74,"reasoning_tokens":0,"ts":"2026-11-21T20:00:00Z","counted_tokens":0}`,
			want: ingest},
		{name: "Ingest batch", pattern: "POST /v1/usage", status: 200, reply: ingest,
			call: func(ctx context.Context, c *client.Client) (any, error) {
				return c.Ingest(ctx, []api.Report{report("a", 1, 2), report("b", 3, 4)})
			},
			method: "POST", path: "/v1/usage", ctype: "application/x-ndjson",
			body: `{"id":"a","bottle":"dev-1","agent":"implementer","provider":"claude","input_tokens":1,"cache_read_tokens":0,"cache_write_tokens":0,"output_tokens":2,"reasoning_tokens":0,"ts":"2026-11-21T20:00:00Z","counted_tokens":0}
{"id":"b","bottle":"dev-1","agent":"implementer","provider":"claude","input_tokens":3,"cache_read_tokens":0,"cache_write_tokens":0,"output_tokens":4,"reasoning_tokens":0,"ts":"2026-11-21T20:00:00Z","counted_tokens":0}
`,
			want: ingest},
		{name: "Verdict with estimate", pattern: "GET /v1/verdict", status: 200, reply: verdict,
			call: func(ctx context.Context, c *client.Client) (any, error) {
				return c.Verdict(ctx, client.VerdictQuery{Bottle: "dev-1", Agent: "implementer", Provider: "claude", Estimate: 5000})
			},
			method: "GET", path: "/v1/verdict", query: "agent=implementer&bottle=dev-1&estimate=5000&provider=claude", want: verdict},
		{name: "Verdict without estimate", pattern: "GET /v1/verdict", status: 200, reply: verdict,
			call: func(ctx context.Context, c *client.Client) (any, error) {
				return c.Verdict(ctx, client.VerdictQuery{Bottle: "dev-1", Provider: "claude"})
			},
			method: "GET", path: "/v1/verdict", query: "agent=&bottle=dev-1&provider=claude", want: verdict},
		{name: "Bottles", pattern: "GET /v1/bottles", status: 200, reply: []api.Bottle{bottle},
			call:   func(ctx context.Context, c *client.Client) (any, error) { return c.Bottles(ctx) },
			method: "GET", path: "/v1/bottles", want: []api.Bottle{bottle}},
		{name: "Bottle", pattern: "GET /v1/bottles/{slug}", status: 200, reply: bottle,
			call:   func(ctx context.Context, c *client.Client) (any, error) { return c.Bottle(ctx, "dev-1") },
			method: "GET", path: "/v1/bottles/dev-1", want: bottle},
		{name: "PutBottle", pattern: "PUT /v1/bottles/{slug}", status: 200, reply: bottle,
			call: func(ctx context.Context, c *client.Client) (any, error) {
				return c.PutBottle(ctx, "dev-1", api.BottleRequest{Agent: "implementer", Parent: "root", Budget: budget.Limits{"claude": budget.Lifetime(1000000)}, Shutdown: "freeze"})
			},
			method: "PUT", path: "/v1/bottles/dev-1", ctype: "application/json",
			body: `{"agent":"implementer","parent":"root","budget":{"claude":1000000},"shutdown":"freeze"}`, want: bottle},
		{name: "DeleteBottle", pattern: "DELETE /v1/bottles/{slug}", status: 204,
			call:   func(ctx context.Context, c *client.Client) (any, error) { return nil, c.DeleteBottle(ctx, "dev-1") },
			method: "DELETE", path: "/v1/bottles/dev-1"},
		{name: "Act", pattern: "POST /v1/bottles/{slug}/actions", status: 202, reply: action,
			call: func(ctx context.Context, c *client.Client) (any, error) {
				return c.Act(ctx, "dev-1", api.ActionRequest{Action: "cutoff", Reason: "runaway"})
			},
			method: "POST", path: "/v1/bottles/dev-1/actions", ctype: "application/json",
			body: `{"action":"cutoff","reason":"runaway"}`, want: action},
		{name: "Actions pending", pattern: "GET /v1/actions", status: 200, reply: []api.Action{action},
			call:   func(ctx context.Context, c *client.Client) (any, error) { return c.Actions(ctx, "pending") },
			method: "GET", path: "/v1/actions", query: "status=pending", want: []api.Action{action}},
		{name: "Action", pattern: "GET /v1/actions/{id}", status: 200, reply: action,
			call:   func(ctx context.Context, c *client.Client) (any, error) { return c.Action(ctx, 7) },
			method: "GET", path: "/v1/actions/7", want: action},
		{name: "Budgets", pattern: "GET /v1/budgets", status: 200, reply: bud.Sources,
			call:   func(ctx context.Context, c *client.Client) (any, error) { return c.Budgets(ctx) },
			method: "GET", path: "/v1/budgets", want: bud.Sources},
		{name: "Budget agent", pattern: "GET /v1/budgets/{scope}/{id...}", status: 200, reply: bud,
			call: func(ctx context.Context, c *client.Client) (any, error) {
				return c.Budget(ctx, budget.Scope{Kind: budget.ScopeAgent, ID: "dev-1/reviewer"})
			},
			method: "GET", path: "/v1/budgets/agent/dev-1/reviewer", want: bud},
		{name: "PutBudget global", pattern: "PUT /v1/budgets/{scope}/{id...}", status: 200, reply: bud,
			call: func(ctx context.Context, c *client.Client) (any, error) {
				return c.PutBudget(ctx, budget.Scope{Kind: budget.ScopeGlobal}, budget.Limits{"claude": budget.Lifetime(5000000)})
			},
			method: "PUT", path: "/v1/budgets/global/-", ctype: "application/json", body: `{"claude":5000000}`, want: bud},
		{name: "RemoveBudget some providers", pattern: "DELETE /v1/budgets/{scope}/{id...}", status: 200, reply: bud,
			call: func(ctx context.Context, c *client.Client) (any, error) {
				return c.RemoveBudget(ctx, budget.Scope{Kind: budget.ScopeAgent, ID: "dev-1/reviewer"}, "claude", "codex")
			},
			method: "DELETE", path: "/v1/budgets/agent/dev-1/reviewer", query: "provider=claude&provider=codex", want: bud},
		{name: "RemoveBudget every provider", pattern: "DELETE /v1/budgets/{scope}/{id...}", status: 200, reply: bud,
			call: func(ctx context.Context, c *client.Client) (any, error) {
				return c.RemoveBudget(ctx, budget.Scope{Kind: budget.ScopeGlobal})
			},
			method: "DELETE", path: "/v1/budgets/global/-", want: bud},
		{name: "Status", pattern: "GET /v1/status", status: 200, reply: status,
			call:   func(ctx context.Context, c *client.Client) (any, error) { return c.Status(ctx) },
			method: "GET", path: "/v1/status", want: status},
		{name: "Audit", pattern: "GET /v1/audit", status: 200, reply: []api.AuditEntry{entry},
			call: func(ctx context.Context, c *client.Client) (any, error) {
				return c.Audit(ctx, client.AuditQuery{Bottle: "dev-1", Limit: 20})
			},
			method: "GET", path: "/v1/audit", query: "bottle=dev-1&limit=20", want: []api.AuditEntry{entry}},
		{name: "VerifyAudit ok", pattern: "GET /v1/audit/verify", status: 200, reply: api.AuditVerify{OK: true, Entries: 3},
			call:   func(ctx context.Context, c *client.Client) (any, error) { return c.VerifyAudit(ctx) },
			method: "GET", path: "/v1/audit/verify", want: api.AuditVerify{OK: true, Entries: 3}},
		{name: "VerifyAudit broken", pattern: "GET /v1/audit/verify", status: 409, reply: api.AuditVerify{Entries: 2, Error: "entry 2: hash mismatch"},
			call:   func(ctx context.Context, c *client.Client) (any, error) { return c.VerifyAudit(ctx) },
			method: "GET", path: "/v1/audit/verify", want: api.AuditVerify{Entries: 2, Error: "entry 2: hash mismatch"}},
	}
}

func TestRoutes(t *testing.T) {
	for _, tc := range routeCases() {
		t.Run(tc.name, func(t *testing.T) {
			srv := clienttest.NewServer(t)
			srv.Reply(tc.pattern, tc.status, tc.reply)
			c := client.New(srv.Socket, client.WithRetry(0))
			got, err := tc.call(context.Background(), c)
			if err != nil {
				t.Fatalf("call: %v", err)
			}
			checkRequest(t, srv.Last(), tc)
			if tc.want != nil && !reflect.DeepEqual(got, tc.want) {
				t.Errorf("reply: got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func checkRequest(t *testing.T, got clienttest.Request, tc routeCase) {
	t.Helper()
	if got.Method != tc.method || got.Path != tc.path || got.Query != tc.query {
		t.Errorf("request: got %s %s?%s, want %s %s?%s", got.Method, got.Path, got.Query, tc.method, tc.path, tc.query)
	}
	if got.ContentType != tc.ctype {
		t.Errorf("content type: got %q, want %q", got.ContentType, tc.ctype)
	}
	if string(got.Body) != tc.body {
		t.Errorf("body:\n got %s\nwant %s", got.Body, tc.body)
	}
}

func TestIngestNoReports(t *testing.T) {
	c := client.New("/nonexistent/bottlecap.sock", client.WithRetry(0))
	if _, err := c.Ingest(context.Background(), nil); !errorsIs(err, budget.ErrInvalid) {
		t.Errorf("got %v, want ErrInvalid", err)
	}
}

func TestMetrics(t *testing.T) {
	srv := clienttest.NewServer(t)
	srv.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = w.Write([]byte("bottlecap_reports_total 9\n"))
	})
	got, err := client.New(srv.Socket).Metrics(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got, "bottlecap_reports_total 9") {
		t.Errorf("got %q", got)
	}
}

func TestReportRawRoundTrip(t *testing.T) {
	srv := clienttest.NewServer(t)
	srv.Reply("POST /v1/usage", 200, api.IngestReply{Accepted: 1})
	r := api.Report{Report: budget.Report{ID: "x", Bottle: "b"}, Raw: json.RawMessage(`"event: message_stop\n"`), Format: "anthropic"}
	if _, err := client.New(srv.Socket).Ingest(context.Background(), []api.Report{r}); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(srv.Last().Body, &got); err != nil {
		t.Fatal(err)
	}
	if got["raw"] != "event: message_stop\n" || got["format"] != "anthropic" {
		t.Errorf("got raw %q format %q", got["raw"], got["format"])
	}
}
