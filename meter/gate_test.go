package meter_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/meter"
	"github.com/bot-bottle/bottlecap/meter/usage"
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
	{"chatgpt", "/backend-api/codex/responses", "codex"},
	{"openai", "/v1/responses/compact", "codex"},
	{"chatgpt", "/backend-api/codex/responses/compact", "codex"},
	{"openai", "/v1/completions", "codex"},
	{"gemini", "/v1beta/models/gemini-2.5-pro:generateContent", "gemini"},
}

// deniedKind is each family's error type (Gemini: status) for a budget
// denial. ChatGPT's Codex backend: the type Codex shows as "You've hit your
// usage limit" instead of a bare 429.
var deniedKind = map[string]string{"anthropic": "rate_limit_error", "openai": "insufficient_quota",
	"chatgpt": "usage_limit_reached", "gemini": "RESOURCE_EXHAUSTED"}

func TestDeniedGetsProviderShaped429(t *testing.T) {
	d := startDaemon(t)
	wantKind := deniedKind
	for i, tt := range familyPaths {
		t.Run(tt.path, func(t *testing.T) {
			bottle := fmt.Sprintf("cut-%s-%d", tt.provider, i)
			d.register(bottle, budget.Limits{tt.provider: budget.Lifetime(10)})
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

func TestDaemonUnreachableFailsClosed(t *testing.T) {
	wantKind := map[string]string{"anthropic": "overloaded_error", "openai": "server_error", "chatgpt": "server_error", "gemini": "UNAVAILABLE"}
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

// TestRefusalBodiesExact pins the bytes of each family's refusal (here the
// fail-closed 503), which the provider table's error shapes produce: the
// SDKs parse them, so they must not change shape.
func TestRefusalBodiesExact(t *testing.T) {
	const msg = "bottlecap: the budget daemon cannot be reached (it is not running); the request was refused (fail-closed)"
	want := map[string]string{
		"/v1/messages":                                  `{"error":{"message":"` + msg + `","type":"overloaded_error"},"type":"error"}` + "\n",
		"/v1/chat/completions":                          `{"error":{"code":"budget_daemon_unavailable","message":"` + msg + `","param":null,"type":"server_error"}}` + "\n",
		"/v1/responses":                                 `{"error":{"code":"budget_daemon_unavailable","message":"` + msg + `","param":null,"type":"server_error"}}` + "\n",
		"/backend-api/codex/responses":                  `{"error":{"code":"budget_daemon_unavailable","message":"` + msg + `","param":null,"type":"server_error"}}` + "\n",
		"/v1beta/models/gemini-2.5-pro:generateContent": `{"error":{"code":503,"message":"` + msg + `","status":"UNAVAILABLE"}}` + "\n",
	}
	_, up := countingUpstream(t)
	_, srv := meterFor(t, "/nonexistent/run/bottlecap.sock", "exact-1", up, nil)
	for path, body := range want {
		resp := post(t, srv.URL+path, `{}`)
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 503 || string(b) != body || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s: got %d %s\nwant 503 %s", path, resp.StatusCode, b, body)
		}
	}
}

// TestTableFormatsAreTheParsers: every endpoint of the provider table names
// a format the usage parser knows, the one it would pick from the path,
// so metering an endpoint in its table format reads it as before.
func TestTableFormatsAreTheParsers(t *testing.T) {
	for _, api := range budget.ProviderAPIs() {
		for _, ep := range api.Endpoints {
			path := ep.Path
			if strings.HasSuffix(path, "/") {
				path += "gemini-2.5-pro" + ep.Suffix
			}
			f, err := usage.ParseFormat(ep.Format)
			if err != nil || f == usage.Auto || usage.FormatForPath(path) != f {
				t.Errorf("%s %s: format %q (%v), but the parser reads the path as %q", api.Family, path, ep.Format, err, usage.FormatForPath(path))
			}
		}
	}
}
