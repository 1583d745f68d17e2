package meter_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/meter"
)

// Codex signed in with ChatGPT builds its provider's URLs as its base URL
// (https://chatgpt.com/backend-api/codex, or openai_base_url) plus
// "responses", and sends the ChatGPT token as a bearer with the account in
// ChatGPT-Account-ID. These tests drive the official OpenAI Go SDK the
// same way: base URL <meter>/backend-api/codex/.

// chatgptAccount is the ChatGPT-Account-ID the tests' client sends.
const chatgptAccount = "acct-test-1"

// chatgptClient is an OpenAI client calling the meter at base as Codex
// calls ChatGPT's Codex backend.
func chatgptClient(base string) *openai.Client {
	c := openai.NewClient(option.WithBaseURL(base+"/backend-api/codex/"), option.WithAPIKey("chatgpt-access-token"),
		option.WithHeader("ChatGPT-Account-ID", chatgptAccount))
	return &c
}

// chatgptBackend is a fake ChatGPT: it streams a recorded Responses event
// stream for POST /backend-api/codex/responses and answers GET
// /backend-api/codex/models, recording what reached it.
type chatgptBackend struct {
	stream []byte

	mu       sync.Mutex
	paths    []string
	accounts []string
	bearers  []string
}

func (b *chatgptBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	b.mu.Lock()
	b.paths = append(b.paths, r.Method+" "+r.URL.Path)
	b.accounts = append(b.accounts, r.Header.Get("ChatGPT-Account-ID"))
	b.bearers = append(b.bearers, r.Header.Get("Authorization"))
	b.mu.Unlock()
	switch r.Method + " " + r.URL.Path {
	case "POST /backend-api/codex/responses":
		w.Header().Set("Content-Type", "text/event-stream")
		for _, ev := range sseEvents(b.stream) {
			io.WriteString(w, ev)
			w.(http.Flusher).Flush()
		}
	case "GET /backend-api/codex/models":
		io.WriteString(w, `{"models":[]}`)
	default:
		http.NotFound(w, r)
	}
}

func (b *chatgptBackend) seen() (paths, accounts, bearers []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.paths...), append([]string(nil), b.accounts...), append([]string(nil), b.bearers...)
}

// meterForChatGPT starts a meter whose ChatGPT upstream is chatgpt and
// whose other APIs all go to others.
func meterForChatGPT(t *testing.T, sock, bottle, chatgpt, others string) (*meter.Proxy, string) {
	t.Helper()
	p, srv := meterFor(t, sock, bottle, others, func(c *meter.Config) {
		up, err := meter.ParseUpstream("chatgpt=" + chatgpt)
		if err != nil {
			t.Fatal(err)
		}
		c.Upstreams = append(c.Upstreams, up) // later entries win
	})
	return p, srv.URL
}

// TestChatGPTPathMeteredAsCodex: a streamed Responses call on Codex's
// ChatGPT path goes to the ChatGPT upstream (not the OpenAI API), with the
// client's token and account, passes to the SDK whole, and is reported
// once under provider codex with the stream's own counts.
func TestChatGPTPathMeteredAsCodex(t *testing.T) {
	d := startDaemon(t)
	const file = "openai-responses-stream-reasoning.sse"
	want := fixtures(t)[file]
	d.register("chatgpt-1", budget.Limits{"codex": budget.Lifetime(1_000_000)})
	backend := &chatgptBackend{stream: readFixture(t, file)}
	apiCalls, apiURL := countingUpstream(t)
	p, base := meterForChatGPT(t, d.Sock, "chatgpt-1", newUpstream(t, backend.ServeHTTP).URL, apiURL)

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	s := chatgptClient(base).Responses.NewStreaming(ctx, responses.ResponseNewParams{
		Model: "gpt-5", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")},
	})
	var completed responses.Response
	for s.Next() {
		if ev := s.Current(); ev.Type == "response.completed" {
			completed = ev.AsResponseCompleted().Response
		}
	}
	if err := s.Err(); err != nil {
		t.Fatalf("the SDK's stream ended with %v", err)
	}
	if completed.Usage.TotalTokens != want.Total() || completed.Usage.OutputTokensDetails.ReasoningTokens != want.Reasoning {
		t.Errorf("the SDK read usage %+v, want the recording's %+v", completed.Usage, want.Usage)
	}
	paths, accounts, bearers := backend.seen()
	if len(paths) != 1 || paths[0] != "POST /backend-api/codex/responses" || accounts[0] != chatgptAccount ||
		bearers[0] != "Bearer chatgpt-access-token" {
		t.Errorf("the ChatGPT upstream saw %v (accounts %v, auth %v); want one POST /backend-api/codex/responses with the client's token and account",
			paths, accounts, bearers)
	}
	if n := atomic.LoadInt64(apiCalls); n != 0 {
		t.Errorf("%d requests went to the OpenAI API upstream", n)
	}
	eventually(t, "the report is acknowledged", func() bool { return len(d.reports("chatgpt-1")) == 1 && p.Pending() == 0 })
	r := d.reports("chatgpt-1")[0]
	if r.ID != completed.ID || r.Usage != want.Usage || !r.Complete || r.Provider != "codex" || r.Model != "gpt-5-2025-08-07" {
		t.Errorf("report %+v, want %s complete under codex with usage %+v", r, completed.ID, want.Usage)
	}
}

// TestChatGPTPathDeniedAsUsageLimit: with the codex budget spent (by a
// report from any path: one budget for both upstreams), a call on the
// ChatGPT path is one request, answered 429 with the error type the
// ChatGPT backend uses for a spent plan (usage_limit_reached, which Codex
// shows as a usage limit and does not retry) and the meter's message
// naming the budget; nothing reaches the upstream.
func TestChatGPTPathDeniedAsUsageLimit(t *testing.T) {
	d := startDaemon(t)
	d.register("chatgpt-denied", budget.Limits{"codex": budget.Lifetime(10)})
	spend := api.Report{Report: budget.Report{ID: "chatgpt-denied-spend", Bottle: "chatgpt-denied", Agent: "implementer",
		Provider: "codex", Host: "api.openai.com", Usage: budget.Usage{Input: 25}}}
	if _, err := d.Client.Ingest(t.Context(), []api.Report{spend}); err != nil {
		t.Fatal(err)
	}
	backend := &chatgptBackend{}
	p, _ := meterForChatGPT(t, d.Sock, "chatgpt-denied", newUpstream(t, backend.ServeHTTP).URL, newUpstream(t, backend.ServeHTTP).URL)
	requests, base := countedMeter(t, p)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	_, err := chatgptClient(base).Responses.New(ctx, responses.ResponseNewParams{
		Model: "gpt-5", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")},
	})
	var e *openai.Error
	if !errors.As(err, &e) || e.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("SDK error %v, want a 429 API error", err)
	}
	if e.Type != "usage_limit_reached" {
		t.Errorf("error object %s, want type usage_limit_reached", e.RawJSON())
	}
	for _, part := range []string{"scope=bottle", "id=chatgpt-denied", "provider=codex", "limit=10", "used=25"} {
		if !strings.Contains(e.Message, part) {
			t.Errorf("the SDK shows %q, which does not name the budget (%s)", e.Message, part)
		}
	}
	paths, _, _ := backend.seen()
	refusedOnce(t, requests.Load(), int64(len(paths)))
}

// TestChatGPTOtherPathsGoToChatGPT: Codex's other calls under its ChatGPT
// base URL (the model list) are forwarded to the ChatGPT upstream,
// unmetered, not to the fallback OpenAI API.
func TestChatGPTOtherPathsGoToChatGPT(t *testing.T) {
	d := startDaemon(t)
	d.register("chatgpt-models", nil)
	backend := &chatgptBackend{}
	apiCalls, apiURL := countingUpstream(t)
	p, base := meterForChatGPT(t, d.Sock, "chatgpt-models", newUpstream(t, backend.ServeHTTP).URL, apiURL)
	resp, err := http.Get(base + "/backend-api/codex/models?client_version=1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(b) != `{"models":[]}` {
		t.Errorf("got %d %s, want the ChatGPT upstream's model list", resp.StatusCode, b)
	}
	if n := atomic.LoadInt64(apiCalls); n != 0 {
		t.Errorf("%d requests went to the OpenAI API upstream", n)
	}
	if n := p.Pending(); n != 0 || len(d.reports("chatgpt-models")) != 0 {
		t.Errorf("the model list was metered (%d pending, %d reports)", n, len(d.reports("chatgpt-models")))
	}
}

// TestChatGPTWebSocketMeteredAndDenied: Codex's Responses WebSocket on
// the ChatGPT path (the SDK's Connect under the ChatGPT base URL) is
// metered like the API's: each response reported under codex, and once
// the budget cannot cover another, a 429 error event of type
// usage_limit_reached that never reaches the upstream.
func TestChatGPTWebSocketMeteredAndDenied(t *testing.T) {
	d := startDaemon(t)
	d.register("chatgpt-ws", budget.Limits{"codex": budget.Lifetime(5000)})
	up := &wsUpstream{}
	apiCalls, apiURL := countingUpstream(t)
	_, base := meterForChatGPT(t, d.Sock, "chatgpt-ws", newUpstream(t, up.ServeHTTP).URL, apiURL)
	conn, err := chatgptClient(base).Responses.Connect(t.Context(), responses.ResponseConnectionOptions{})
	if err != nil {
		t.Fatalf("connect through the meter: %v", err)
	}
	defer conn.Close()
	for i := 1; i <= 2; i++ {
		if _, status, msg := wsTurn(t, conn, "gpt-5"); status != 0 {
			t.Fatalf("turn %d: error %d %q; want the upstream's response", i, status, msg)
		}
		eventually(t, "the response is reported", func() bool { return len(d.reports("chatgpt-ws")) == i })
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := conn.Create(ctx, responses.ResponsesClientEventResponseCreateParam{
		Model: "gpt-5", Input: responses.ResponsesClientEventResponseCreateInputUnionParam{OfString: openai.String("hi")},
	}); err != nil {
		t.Fatal(err)
	}
	ev, err := conn.Recv(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var denied struct {
		Type   string
		Status int
		Error  struct{ Type, Message string }
	}
	if json.Unmarshal([]byte(ev.RawJSON()), &denied) != nil || denied.Type != "error" || denied.Status != 429 ||
		denied.Error.Type != "usage_limit_reached" || !strings.Contains(denied.Error.Message, "limit=5000") {
		t.Errorf("turn 3 got %s, want a 429 error event of type usage_limit_reached naming the budget", ev.RawJSON())
	}
	if n := up.creates.Load(); n != 2 {
		t.Errorf("the upstream received %d response.create, want 2", n)
	}
	if n := atomic.LoadInt64(apiCalls); n != 0 {
		t.Errorf("%d requests went to the OpenAI API upstream", n)
	}
	for _, r := range d.reports("chatgpt-ws") {
		if r.Provider != "codex" || r.Usage != (budget.Usage{Input: 300, CacheRead: 100, Output: 200, Reasoning: 50}) {
			t.Errorf("report %+v, want codex with the upstream's counts", r)
		}
	}
}

// TestUpstreamNamesForCodex: --upstream names the ChatGPT backend by its
// family, and the provider name codex still names the OpenAI API (as it
// did before the ChatGPT backend had its own row); either can be renamed.
func TestUpstreamNamesForCodex(t *testing.T) {
	tests := []struct{ flag, family, provider, host string }{
		{"codex=https://api.example", "openai", "codex", "api.example"},
		{"openai=https://api.example", "openai", "codex", "api.example"},
		{"chatgpt=https://chatgpt.example", "chatgpt", "codex", "chatgpt.example"},
		{"chatgpt:work=https://chatgpt.example", "chatgpt", "work", "chatgpt.example"},
	}
	for _, tt := range tests {
		u, err := meter.ParseUpstream(tt.flag)
		if err != nil || u.Family != tt.family || u.Provider != tt.provider || u.URL.Host != tt.host {
			t.Errorf("ParseUpstream(%q) = %+v, %v; want family %s, provider %s, host %s", tt.flag, u, err, tt.family, tt.provider, tt.host)
		}
	}
}
