package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
)

// path joins escaped segments under the API version: path("bottles", slug).
func path(segments ...string) string {
	var b strings.Builder
	b.WriteString(api.Version)
	for _, s := range segments {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	return b.String()
}

// Ingest sends usage reports: one as a JSON object, several as one NDJSON
// batch. Ingestion is idempotent (report ids), so it is retried while the
// daemon restarts or its store is busy.
func (c *Client) Ingest(ctx context.Context, reports []api.Report) (api.IngestReply, error) {
	var reply api.IngestReply
	if len(reports) == 0 {
		return reply, fmt.Errorf("%w: no reports to send", budget.ErrInvalid)
	}
	r, err := ingestRequest(reports)
	if err != nil {
		return reply, err
	}
	return reply, c.do(ctx, r, &reply)
}

// ingestRequest encodes reports as POST /v1/usage.
func ingestRequest(reports []api.Report) (request, error) {
	if len(reports) == 1 {
		return jsonRequest(http.MethodPost, path("usage"), reports[0])
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf) // one object per line
	for i := range reports {
		if err := enc.Encode(reports[i]); err != nil {
			return request{}, fmt.Errorf("encode report %q: %w", reports[i].ID, err)
		}
	}
	return request{method: http.MethodPost, path: path("usage"), body: buf.Bytes(), contentType: "application/x-ndjson"}, nil
}

// VerdictQuery names what the gate is asked about. Estimate, when above
// zero, also requires that many tokens to be left.
type VerdictQuery struct {
	Bottle   string
	Agent    string
	Provider string
	Estimate int64
}

// Verdict asks the gate whether a bottle's agent may spend on a provider.
func (c *Client) Verdict(ctx context.Context, q VerdictQuery) (budget.Verdict, error) {
	v := url.Values{"bottle": {q.Bottle}, "agent": {q.Agent}, "provider": {q.Provider}}
	if q.Estimate > 0 {
		v.Set("estimate", strconv.FormatInt(q.Estimate, 10))
	}
	var out budget.Verdict
	return out, c.do(ctx, request{method: http.MethodGet, path: path("verdict"), query: v}, &out)
}

// Bottles lists every bottle the daemon knows, with usage and verdicts.
func (c *Client) Bottles(ctx context.Context) ([]api.Bottle, error) {
	var out []api.Bottle
	return out, c.do(ctx, request{method: http.MethodGet, path: path("bottles")}, &out)
}

// Bottle returns one bottle; an unknown slug is budget.ErrNotFound.
func (c *Client) Bottle(ctx context.Context, slug string) (api.Bottle, error) {
	var out api.Bottle
	return out, c.do(ctx, request{method: http.MethodGet, path: path("bottles", slug)}, &out)
}

// PutBottle registers a bottle or updates its registration.
func (c *Client) PutBottle(ctx context.Context, slug string, b api.BottleRequest) (api.Bottle, error) {
	var out api.Bottle
	r, err := jsonRequest(http.MethodPut, path("bottles", slug), b)
	if err != nil {
		return out, err
	}
	return out, c.do(ctx, r, &out)
}

// DeleteBottle makes the daemon forget a bottle; its ledger is kept.
func (c *Client) DeleteBottle(ctx context.Context, slug string) error {
	return c.do(ctx, request{method: http.MethodDelete, path: path("bottles", slug)}, nil)
}

// Act asks for an operator action on a bottle (cutoff, freeze, kill,
// restore). It is not idempotent, so it is retried only when the daemon
// could not be reached at all, never once the request may have been sent.
func (c *Client) Act(ctx context.Context, slug string, a api.ActionRequest) (api.Action, error) {
	var out api.Action
	r, err := jsonRequest(http.MethodPost, path("bottles", slug, "actions"), a)
	if err != nil {
		return out, err
	}
	r.retry = retryDialOnly
	return out, c.do(ctx, r, &out)
}

// Actions lists journaled actions; status filters by pending, done or
// failed ("" for all).
func (c *Client) Actions(ctx context.Context, status string) ([]api.Action, error) {
	r := request{method: http.MethodGet, path: path("actions")}
	if status != "" {
		r.query = url.Values{"status": {status}}
	}
	var out []api.Action
	return out, c.do(ctx, r, &out)
}

// Action reads one journaled action by its id: poll it to learn whether
// an action Act started is done or failed.
func (c *Client) Action(ctx context.Context, id int64) (api.Action, error) {
	var out api.Action
	return out, c.do(ctx, request{method: http.MethodGet, path: path("actions", strconv.FormatInt(id, 10))}, &out)
}

// Budgets lists every limit of every scope with its source, those in
// force and those they override.
func (c *Client) Budgets(ctx context.Context) ([]api.BudgetLimit, error) {
	var out []api.BudgetLimit
	return out, c.do(ctx, request{method: http.MethodGet, path: path("budgets")}, &out)
}

// budgetPath is the route of one scope: global/-, bottle/<slug>,
// agent/<slug>/<agent> (the scope ID "slug/agent" is two segments).
func budgetPath(s budget.Scope) string {
	id := s.ID
	if id == "" && s.Kind == budget.ScopeGlobal {
		id = "-"
	}
	return path(append([]string{"budgets", string(s.Kind)}, strings.Split(id, "/")...)...)
}

// Budget returns the limits at one scope.
func (c *Client) Budget(ctx context.Context, s budget.Scope) (api.Budget, error) {
	var out api.Budget
	return out, c.do(ctx, request{method: http.MethodGet, path: budgetPath(s)}, &out)
}

// PutBudget sets limits at one scope at runtime, provider by provider.
func (c *Client) PutBudget(ctx context.Context, s budget.Scope, limits budget.Limits) (api.Budget, error) {
	var out api.Budget
	r, err := jsonRequest(http.MethodPut, budgetPath(s), limits)
	if err != nil {
		return out, err
	}
	return out, c.do(ctx, r, &out)
}

// RemoveBudget removes the limits in force at one scope for the providers
// given (every provider when none is): runtime limits, or a registration's
// where no runtime limit overrides it. A limit from settings or a label is
// a conflict (budget.ErrConflict) naming where to change it.
func (c *Client) RemoveBudget(ctx context.Context, s budget.Scope, providers ...string) (api.Budget, error) {
	var out api.Budget
	r := request{method: http.MethodDelete, path: budgetPath(s)}
	if len(providers) > 0 {
		r.query = url.Values{"provider": providers}
	}
	return out, c.do(ctx, r, &out)
}

// Status returns the daemon's health and a summary; it is also the
// cheapest way to ask "is the daemon running?".
func (c *Client) Status(ctx context.Context) (api.Status, error) {
	var out api.Status
	return out, c.do(ctx, request{method: http.MethodGet, path: path("status")}, &out)
}

// AuditQuery filters the audit log: one bottle, and at most Limit entries
// (0 lets the daemon choose).
type AuditQuery struct {
	Bottle string
	Limit  int
}

// Audit returns audit entries, newest first.
func (c *Client) Audit(ctx context.Context, q AuditQuery) ([]api.AuditEntry, error) {
	v := url.Values{}
	if q.Bottle != "" {
		v.Set("bottle", q.Bottle)
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	var out []api.AuditEntry
	return out, c.do(ctx, request{method: http.MethodGet, path: path("audit"), query: v}, &out)
}

// VerifyAudit checks the audit log's hash chain. A broken chain is an
// answer, not a failed call: it is returned with OK false and a nil error.
func (c *Client) VerifyAudit(ctx context.Context) (api.AuditVerify, error) {
	var out api.AuditVerify
	err := c.do(ctx, request{method: http.MethodGet, path: path("audit", "verify")}, &out)
	var e *Error
	if errors.As(err, &e) && e.Status == http.StatusConflict {
		if json.Unmarshal(e.body, &out) == nil && !out.OK {
			return out, nil
		}
	}
	return out, err
}

// Metrics returns the daemon's Prometheus text exposition.
func (c *Client) Metrics(ctx context.Context) (string, error) {
	resp, err := c.send(ctx, c.http, request{method: http.MethodGet, path: "/metrics"})
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("read metrics: %w", err)
	}
	return string(b), nil
}

// Allow asks for an allowance, or for more on an existing one (SPEC section
// 11). Like Act it is not idempotent (each call may add tokens), so it is
// retried only when the daemon could not be reached at all. An unknown or
// expired ID is budget.ErrNotFound: ask again without it.
func (c *Client) Allow(ctx context.Context, a api.AllowanceRequest) (api.Allowance, error) {
	var out api.Allowance
	r, err := jsonRequest(http.MethodPost, path("allowances"), a)
	if err != nil {
		return out, err
	}
	r.retry = retryDialOnly
	return out, c.do(ctx, r, &out)
}

// ReleaseAllowance gives back what an allowance holds; reports that name it
// later still count, and settle nothing.
func (c *Client) ReleaseAllowance(ctx context.Context, id string) error {
	return c.do(ctx, request{method: http.MethodDelete, path: path("allowances", id)}, nil)
}
