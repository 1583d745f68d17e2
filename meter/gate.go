package meter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/client"
)

// admit asks the gate whether the request may go upstream and, when it may
// not, answers it in the provider's own error shape. It reports whether the
// request should be forwarded.
func (p *Proxy) admit(w http.ResponseWriter, r *http.Request, up *upstream) bool {
	ref := p.gate(r.Context(), up)
	if ref == nil {
		return true
	}
	refuseUnlessGone(w, up, ref)
	return false
}

// refusal is why the gate refused a request: the HTTP status it is answered
// with, the refusal of the provider table that names its error kind, and
// the message naming the budget. A zero status means nobody is left to
// answer (the client went away while the gate was asked).
type refusal struct {
	status int
	kind   string
	msg    string
}

// gate asks the daemon whether up's provider may spend now, and returns
// nil when it may. It is shared by HTTP requests and by each response.create
// of a WebSocket session.
func (p *Proxy) gate(ctx context.Context, up *upstream) *refusal {
	if ref := p.backlog(); ref != nil {
		return ref
	}
	if p.verdicts.fresh(up.Provider) {
		return nil
	}
	gctx, cancel := context.WithTimeout(ctx, p.cfg.GateTimeout)
	defer cancel()
	v, err := p.cfg.Daemon.Verdict(gctx, client.VerdictQuery{Bottle: p.cfg.Bottle, Agent: p.cfg.Agent, Provider: up.Provider})
	if err == nil {
		p.verdicts.note(up.Provider, v)
	}
	switch {
	case err != nil && ctx.Err() != nil:
		return &refusal{} // the client left while we asked
	case err != nil && p.cfg.FailOpen:
		// Fallback chosen by the operator (--fail-open): forward unmetered
		// by the gate; the response is still reported through the queue.
		p.log.Warn("budget daemon unreachable; forwarding (fail-open)", "provider", up.Provider, "err", err.Error())
		return nil
	case err != nil:
		p.log.Warn("budget daemon unreachable; refusing (fail-closed)", "provider", up.Provider, "err", err.Error())
		return &refusal{http.StatusServiceUnavailable, budget.RefuseUnavailable, unreachableMessage(err)}
	case !v.Allowed:
		return &refusal{http.StatusTooManyRequests, budget.RefuseDenied, deniedMessage(p.cfg.Bottle, p.cfg.Agent, v, nil)}
	}
	return nil
}

// backlog refuses new requests while the report queue is full (the
// daemon is not acknowledging reports), unless the meter fails open.
func (p *Proxy) backlog() *refusal {
	if p.queue.full() && !p.cfg.FailOpen {
		return &refusal{http.StatusServiceUnavailable, budget.RefuseUnavailable,
			"bottlecap: usage reports are backing up (the budget daemon is not acknowledging them); retry later"}
	}
	return nil
}

// deniedMessage names the budget that tripped — its scope and id, the
// provider, its limit, what is used and what allowances hold — in the one
// field every SDK shows (the error message), so an agent's log says why
// it stopped. n, when set, is what an allowance could not cover: the
// request's estimate. Unless the budget is spent or the bottle blocked,
// the reason is then the estimate against what is left, not the daemon's
// (which speaks of the pool's ask, headroom included).
func deniedMessage(bottle, agent string, v budget.Verdict, n *need) string {
	who := "bottle " + bottle
	if agent != "" {
		who += " (agent " + agent + ")"
	}
	reason := v.Reason
	switch {
	case n != nil && n.more && !v.State.Blocked() && (v.Unlimited || v.Used < v.Limit):
		reason = fmt.Sprintf("the response has spent what was set aside for it, and the %d tokens left do not cover another output slice of %d",
			v.Remaining+n.free, n.total)
	case n != nil && !v.State.Blocked() && (v.Unlimited || v.Used < v.Limit):
		reason = fmt.Sprintf("the request needs %d tokens (input estimate %d + output slice %d) and %d are left for it",
			n.total, n.input, n.total-n.input, v.Remaining+n.free)
	case reason == "":
		reason = "budget exhausted"
	}
	msg := fmt.Sprintf("bottlecap: %s may not spend %s tokens: %s", who, v.Provider, reason)
	if v.Scope.Kind != "" && v.Scope.Kind != "none" {
		msg += fmt.Sprintf(" [budget scope=%s id=%s provider=%s limit=%d used=%d held=%d remaining=%d",
			v.Scope.Kind, v.Scope.ID, v.Provider, v.Limit, v.Used, v.Held, v.Remaining)
		if v.Window != "" {
			msg += " window=" + v.Window
		}
		if !v.ResetsAt.IsZero() {
			msg += " resets_at=" + v.ResetsAt.Format(time.RFC3339)
		}
		if n != nil {
			msg += fmt.Sprintf(" estimate=%d", n.total)
		}
		msg += "]"
	}
	return msg + "; retrying will not help until the budget is raised or its window resets"
}

// need is what a refused request needed of its allowance, in counted
// tokens: its input estimate and output slice (total), and what the
// meter's own pool had free for it; more is set for a response in flight
// that needed another output slice.
type need struct {
	total, input, free int64
	more               bool
}

// unreachableMessage says the request was refused because the budget
// daemon could not be asked, and why.
func unreachableMessage(err error) string {
	why := "it did not answer"
	if errors.Is(err, client.ErrDaemonDown) {
		why = "it is not running"
	}
	return "bottlecap: the budget daemon cannot be reached (" + why + "); the request was refused (fail-closed)"
}

// writeError answers in the error shape up's SDKs parse, so an agent
// shows the message instead of a generic failure. kind names the refusal
// of the provider table whose type and code fill the shape; "" leaves
// them empty.
func writeError(w http.ResponseWriter, up *upstream, status int, kind, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Bottlecap", "refused")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(errorBody(up.api.Denial, status, kind, msg)) // the client may be gone; nothing to do
}

// errorBody is shape's JSON error object for one refusal.
func errorBody(shape budget.ErrorShape, status int, kind, msg string) map[string]any {
	return fillEnvelope(shape.Envelope, status, shape.Kinds[kind], msg).(map[string]any)
}

// fillEnvelope copies an envelope of the provider table with its
// placeholders filled in.
func fillEnvelope(v any, status int, kind budget.ErrorKind, msg string) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = fillEnvelope(x, status, kind, msg)
		}
		return out
	case string:
		switch v {
		case "$message":
			return msg
		case "$type":
			return kind.Type
		case "$code":
			return kind.Code
		case "$status":
			return status
		}
	}
	return v
}
