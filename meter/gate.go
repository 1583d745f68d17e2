package meter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/bot-bottle/bottlecap/client"
)

// admit asks the gate whether the request may go upstream and, when it may
// not, answers it in the provider's own error shape. It reports whether the
// request should be forwarded.
func (p *Proxy) admit(w http.ResponseWriter, r *http.Request, up *Upstream) bool {
	if p.queue.full() && !p.cfg.FailOpen {
		writeError(w, up.Family, http.StatusServiceUnavailable,
			"bottlecap: usage reports are backing up (the budget daemon is not acknowledging them); retry later")
		return false
	}
	if p.verdicts.fresh(up.Provider) {
		return true
	}
	ctx, cancel := context.WithTimeout(r.Context(), p.cfg.GateTimeout)
	defer cancel()
	v, err := p.cfg.Daemon.Verdict(ctx, client.VerdictQuery{Bottle: p.cfg.Bottle, Agent: p.cfg.Agent, Provider: up.Provider})
	if err == nil {
		p.verdicts.note(up.Provider, v)
	}
	switch {
	case err != nil && r.Context().Err() != nil:
		return false // the client left while we asked
	case err != nil && p.cfg.FailOpen:
		// Fallback chosen by the operator (--fail-open): forward unmetered
		// by the gate; the response is still reported through the queue.
		p.log.Warn("budget daemon unreachable; forwarding (fail-open)", "provider", up.Provider, "err", err.Error())
		return true
	case err != nil:
		p.log.Warn("budget daemon unreachable; refusing (fail-closed)", "provider", up.Provider, "err", err.Error())
		writeError(w, up.Family, http.StatusServiceUnavailable, unreachableMessage(err))
		return false
	case !v.Allowed:
		writeError(w, up.Family, http.StatusTooManyRequests, deniedMessage(v.Reason, up.Provider))
		return false
	}
	return true
}

// deniedMessage names the budget that tripped.
func deniedMessage(reason, provider string) string {
	if reason == "" {
		reason = "budget exhausted"
	}
	return fmt.Sprintf("bottlecap: %s budget denied: %s", provider, reason)
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

// writeError answers in the error shape the family's SDKs parse, so an
// agent shows the message instead of a generic failure.
func writeError(w http.ResponseWriter, f Family, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Bottlecap", "refused")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(errorBody(f, status, msg)) // the client may be gone; nothing to do
}

// errorBody is the family's JSON error object for status.
func errorBody(f Family, status int, msg string) any {
	switch f {
	case Anthropic:
		typ := map[int]string{429: "rate_limit_error", 502: "api_error", 503: "overloaded_error"}[status]
		return map[string]any{"type": "error", "error": map[string]string{"type": typ, "message": msg}}
	case Gemini:
		st := map[int]string{429: "RESOURCE_EXHAUSTED", 502: "UNAVAILABLE", 503: "UNAVAILABLE"}[status]
		return map[string]any{"error": map[string]any{"code": status, "message": msg, "status": st}}
	}
	typ := map[int]string{429: "insufficient_quota", 502: "server_error", 503: "server_error"}[status]
	code := map[int]string{429: "insufficient_quota", 502: "upstream_unreachable", 503: "budget_daemon_unavailable"}[status]
	return map[string]any{"error": map[string]any{"message": msg, "type": typ, "code": code, "param": nil}}
}
