package meter_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/meter"
)

// countingUpstream answers 200 with a small Chat body and counts calls.
func countingUpstream(t *testing.T) (*int64, string) {
	var calls int64
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		atomic.AddInt64(&calls, 1)
		io.WriteString(w, `{"id":"chatcmpl-1","object":"chat.completion","usage":{"prompt_tokens":1,"completion_tokens":1}}`)
	})
	return &calls, up.URL
}

// errorShape reads the provider-shaped error of a refused request: its
// message and its type/status field.
func errorShape(t *testing.T, family string, b []byte) (msg, kind string) {
	t.Helper()
	var v struct {
		Type  string `json:"type"`
		Error struct {
			Type    string `json:"type"`
			Message string `json:"message"`
			Status  string `json:"status"`
			Code    any    `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("not JSON: %s", b)
	}
	switch family {
	case "anthropic":
		if v.Type != "error" {
			t.Errorf("anthropic error without type error: %s", b)
		}
		return v.Error.Message, v.Error.Type
	case "gemini":
		return v.Error.Message, v.Error.Status
	}
	return v.Error.Message, v.Error.Type
}

var familyPaths = []struct{ family, path, provider string }{
	{"anthropic", "/v1/messages", "claude"},
	{"openai", "/v1/chat/completions", "codex"},
	{"openai", "/v1/responses", "codex"},
	{"gemini", "/v1beta/models/gemini-2.5-pro:generateContent", "gemini"},
}

func TestDeniedGetsProviderShaped429(t *testing.T) {
	d := startDaemon(t)
	wantKind := map[string]string{"anthropic": "rate_limit_error", "openai": "insufficient_quota", "gemini": "RESOURCE_EXHAUSTED"}
	for _, tt := range familyPaths {
		t.Run(tt.path, func(t *testing.T) {
			bottle := "cut-" + tt.provider + "-" + strings.Trim(strings.Map(keepAlnum, tt.path), "-")[:8]
			d.register(bottle, map[string]api.Amount{tt.provider: 10})
			spend := api.Report{Report: budget.Report{ID: bottle + "-spend", Bottle: bottle, Agent: "implementer", Provider: tt.provider, Usage: budget.Usage{Input: 100}}}
			if _, err := d.Client.Ingest(t.Context(), []api.Report{spend}); err != nil {
				t.Fatal(err)
			}
			calls, up := countingUpstream(t)
			_, srv := meterFor(t, d.Sock, bottle, up, nil)
			resp := post(t, srv.URL+tt.path, `{}`)
			b, _ := io.ReadAll(resp.Body)
			msg, kind := errorShape(t, tt.family, b)
			if resp.StatusCode != 429 || kind != wantKind[tt.family] || resp.Header.Get("X-Should-Retry") != "false" {
				t.Errorf("got %d %s (x-should-retry %q), want 429 with %s and x-should-retry: false",
					resp.StatusCode, b, resp.Header.Get("X-Should-Retry"), wantKind[tt.family])
			}
			if !strings.Contains(msg, bottle) || !strings.Contains(msg, tt.provider) {
				t.Errorf("message %q does not name the budget that tripped (bottle %s, %s)", msg, bottle, tt.provider)
			}
			if atomic.LoadInt64(calls) != 0 {
				t.Errorf("a denied request reached the upstream")
			}
		})
	}
}

func keepAlnum(r rune) rune {
	if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
		return r
	}
	return '-'
}

func TestDaemonUnreachableFailsClosed(t *testing.T) {
	wantKind := map[string]string{"anthropic": "overloaded_error", "openai": "server_error", "gemini": "UNAVAILABLE"}
	for _, tt := range familyPaths {
		t.Run(tt.path, func(t *testing.T) {
			calls, up := countingUpstream(t)
			_, srv := meterFor(t, "/nonexistent/run/bottlecap.sock", "closed-1", up, nil)
			resp := post(t, srv.URL+tt.path, `{}`)
			b, _ := io.ReadAll(resp.Body)
			msg, kind := errorShape(t, tt.family, b)
			if resp.StatusCode != 503 || kind != wantKind[tt.family] || !strings.Contains(msg, "cannot be reached") ||
				resp.Header.Get("X-Should-Retry") != "false" {
				t.Errorf("got %d %s, want 503 %s saying the daemon cannot be reached, with x-should-retry: false", resp.StatusCode, b, wantKind[tt.family])
			}
			if atomic.LoadInt64(calls) != 0 {
				t.Errorf("the request reached the upstream with the gate unreachable")
			}
		})
	}
}

func TestDaemonUnreachableFailOpen(t *testing.T) {
	calls, up := countingUpstream(t)
	p, srv := meterFor(t, "/nonexistent/run/bottlecap.sock", "open-1", up, func(c *meter.Config) { c.FailOpen = true })
	resp := post(t, srv.URL+"/v1/chat/completions", `{}`)
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(b), "chatcmpl-1") || atomic.LoadInt64(calls) != 1 {
		t.Errorf("got %d %s, want the upstream's answer", resp.StatusCode, b)
	}
	eventually(t, "the report is queued for later", func() bool { return p.Pending() == 1 })
}
