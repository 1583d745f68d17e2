package meter_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	aoption "github.com/anthropics/anthropic-sdk-go/option"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/meter"
)

// recordingUpstream answers 200 {} to anything and records what reached it.
type recordingUpstream struct {
	mu   sync.Mutex
	seen []string
}

func (u *recordingUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	u.mu.Lock()
	u.seen = append(u.seen, r.Method+" "+r.URL.EscapedPath())
	u.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{}`)
}

func (u *recordingUpstream) requests() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.seen...)
}

// unmeteredMeter is a meter in front of a recording upstream for every
// API. Its daemon cannot be reached: refusing an unmetered call does not
// ask the daemon, and what passes is not metered.
func unmeteredMeter(t *testing.T, pass ...string) (*meter.Proxy, string, *recordingUpstream) {
	t.Helper()
	up := &recordingUpstream{}
	p, srv := meterFor(t, "/nonexistent/run/bottlecap.sock", "unmetered-1", newUpstream(t, up.ServeHTTP).URL,
		func(c *meter.Config) { c.PassUnmetered = pass })
	return p, srv.URL, up
}

// send makes one request through the meter with headers that route it to
// family's API (Anthropic's version header; the other APIs go by path).
func send(t *testing.T, method, url, family string) (*http.Response, []byte) {
	t.Helper()
	var body io.Reader = strings.NewReader(`{"model":"m","input":"hi"}`)
	if method == http.MethodGet {
		body = nil // a read carries no prompt
	}
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if family == "anthropic" {
		req.Header.Set("Anthropic-Version", "2023-06-01")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// unmeteredKind is each family's error type (Gemini: status) for a call
// refused as unmetered.
var unmeteredKind = map[string]string{"anthropic": "permission_error", "openai": "invalid_request_error",
	"chatgpt": "invalid_request_error", "gemini": "PERMISSION_DENIED"}

// TestUnmeteredCallsRefused: a POST to every call of the provider table's
// unmetered list (an id or model where its pattern has "*") is answered
// 403 in its API's error shape, not to be retried, saying bottlecap does
// not meter it and how an operator lets it through; nothing reaches the
// upstream.
func TestUnmeteredCallsRefused(t *testing.T) {
	_, base, up := unmeteredMeter(t)
	n := 0
	for _, api := range budget.ProviderAPIs() {
		for _, u := range api.Unmetered {
			n++
			path := strings.ReplaceAll(u.Pattern, "*", "id_1")
			resp, b := send(t, http.MethodPost, base+path, api.Family)
			msg, kind := errorShape(t, api.Family, b)
			if resp.StatusCode != http.StatusForbidden || kind != unmeteredKind[api.Family] || resp.Header.Get("X-Should-Retry") != "false" {
				t.Errorf("%s %s: got %d %s, want 403 %s with x-should-retry: false", api.Family, path, resp.StatusCode, b, unmeteredKind[api.Family])
			}
			for _, part := range []string{path, "does not meter", "budget cannot see", "--pass-unmetered " + u.Pattern} {
				if !strings.Contains(msg, part) {
					t.Errorf("%s %s: message %q lacks %q", api.Family, path, msg, part)
				}
			}
		}
	}
	if n < 30 {
		t.Errorf("the provider table lists %d unmetered calls; it lost some", n)
	}
	if seen := up.requests(); len(seen) != 0 {
		t.Errorf("refused calls reached the upstream: %v", seen)
	}
}

// TestUnmeteredRefusedAnySpelling: the path an upstream may fold to a
// refused call is refused too: doubled or trailing slashes, "." and "..",
// letter case, an escaped "/" inside an id, a query.
func TestUnmeteredRefusedAnySpelling(t *testing.T) {
	_, base, up := unmeteredMeter(t)
	for _, path := range []string{
		"/v1//batches", "/v1/batches/", "/v1/./batches", "/v1/files/../batches", "/V1/Batches",
		"/v1/threads/thread%2Fx/runs", "/v1/embeddings?api-version=1", "/v1beta/models/gemini-embedding-001:EMBEDCONTENT", "/v1/models/gemini-embedding-001:embedContent",
	} {
		resp, b := send(t, http.MethodPost, base+path, "")
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: got %d %s, want 403", path, resp.StatusCode, b)
		}
	}
	if seen := up.requests(); len(seen) != 0 {
		t.Errorf("refused calls reached the upstream: %v", seen)
	}
}

// TestUnmeteredSparesOtherCalls: what agents call besides generation —
// listing batches, cancelling one, counting tokens, Claude Code's
// telemetry and sign-in, Codex's model list — and a GET of a listed path
// still reach the upstream, unmetered.
func TestUnmeteredSparesOtherCalls(t *testing.T) {
	p, base, up := unmeteredMeter(t)
	calls := []struct{ method, path, family string }{
		{http.MethodGet, "/v1/batches", "openai"},
		{http.MethodPost, "/v1/batches/batch_1/cancel", "openai"},
		{http.MethodGet, "/v1/messages/batches/msgbatch_1/results", "anthropic"},
		{http.MethodPost, "/v1/messages/count_tokens", "anthropic"},
		{http.MethodPost, "/api/event_logging/batch", "anthropic"},
		{http.MethodPost, "/api/oauth/claude_cli/create_api_key", "anthropic"},
		{http.MethodPost, "/v1/responses/input_tokens", "openai"},
		{http.MethodPost, "/v1/moderations", "openai"},
		{http.MethodGet, "/backend-api/codex/models", "chatgpt"},
		{http.MethodPost, "/v1beta/models/gemini-2.5-pro:countTokens", "gemini"},
	}
	for _, c := range calls {
		resp, b := send(t, c.method, base+c.path, c.family)
		if resp.StatusCode != http.StatusOK || string(b) != `{}` {
			t.Errorf("%s %s: got %d %s, want the upstream's answer", c.method, c.path, resp.StatusCode, b)
		}
	}
	if seen := up.requests(); len(seen) != len(calls) {
		t.Errorf("the upstream saw %v, want all %d calls", seen, len(calls))
	}
	if n := p.Pending(); n != 0 {
		t.Errorf("%d reports queued for calls that are not metered", n)
	}
}

// TestPassUnmeteredLetsOneThrough: an unmetered call the operator names
// is forwarded as it is, unmetered; the others stay refused.
func TestPassUnmeteredLetsOneThrough(t *testing.T) {
	p, base, up := unmeteredMeter(t, "/v1/embeddings", "/*/models/*:embedContent")
	for _, path := range []string{"/v1/embeddings", "/v1beta/models/gemini-embedding-001:embedContent"} {
		if resp, b := send(t, http.MethodPost, base+path, ""); resp.StatusCode != http.StatusOK {
			t.Errorf("%s: got %d %s, want it passed to the upstream", path, resp.StatusCode, b)
		}
	}
	if resp, _ := send(t, http.MethodPost, base+"/v1/batches", ""); resp.StatusCode != http.StatusForbidden {
		t.Errorf("/v1/batches: got %d, want it still refused", resp.StatusCode)
	}
	want := []string{"POST /v1/embeddings", "POST /v1beta/models/gemini-embedding-001:embedContent"}
	if seen := up.requests(); strings.Join(seen, ",") != strings.Join(want, ",") {
		t.Errorf("the upstream saw %v, want %v", seen, want)
	}
	if n := p.Pending(); n != 0 {
		t.Errorf("%d reports queued for a passed call, which is not metered", n)
	}
}

// TestPassUnmeteredNamesChecked: a name that is not an unmetered call of
// the table fails the meter's start, naming it.
func TestPassUnmeteredNamesChecked(t *testing.T) {
	for _, name := range []string{"/v1/embedding", "/v1/chat/completions", "embeddings", "/V1/EMBEDDINGS"} {
		_, err := meter.New(meter.Config{Bottle: "b", Socket: "/nonexistent.sock", PassUnmetered: []string{name}})
		if !errors.Is(err, budget.ErrInvalid) || !strings.Contains(err.Error(), name) {
			t.Errorf("PassUnmetered %q: error %v, want ErrInvalid naming it", name, err)
		}
	}
}

// TestSDKUnmeteredIsOnePermissionError: the official SDKs raise the
// refusal as a 403 permission error after one request (403 is not
// retried), and show the meter's message.
func TestSDKUnmeteredIsOnePermissionError(t *testing.T) {
	calls := []struct {
		name string
		call func(ctx context.Context, base string) (int, string, error)
	}{
		{"openai embeddings", func(ctx context.Context, base string) (int, string, error) {
			c := openai.NewClient(option.WithBaseURL(base+"/v1/"), option.WithAPIKey("sk-test"))
			_, err := c.Embeddings.New(ctx, openai.EmbeddingNewParams{Model: openai.EmbeddingModelTextEmbedding3Small,
				Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String("hi")}})
			return openaiShown(err)
		}},
		{"openai batches", func(ctx context.Context, base string) (int, string, error) {
			c := openai.NewClient(option.WithBaseURL(base+"/v1/"), option.WithAPIKey("sk-test"))
			_, err := c.Batches.New(ctx, openai.BatchNewParams{InputFileID: "file-1", Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions,
				CompletionWindow: openai.BatchNewParamsCompletionWindow24h})
			return openaiShown(err)
		}},
		{"anthropic message batches", func(ctx context.Context, base string) (int, string, error) {
			c := anthropic.NewClient(aoption.WithBaseURL(base), aoption.WithAPIKey("sk-ant-test"))
			_, err := c.Messages.Batches.New(ctx, anthropic.MessageBatchNewParams{Requests: []anthropic.MessageBatchNewParamsRequest{{
				CustomID: "r1", Params: anthropic.MessageBatchNewParamsRequestParams{Model: "claude-haiku-4-5", MaxTokens: 64,
					Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))}},
			}}})
			var e *anthropic.Error
			if !errors.As(err, &e) {
				return 0, "", err
			}
			return e.StatusCode, e.Error(), err
		}},
	}
	for _, tt := range calls {
		t.Run(tt.name, func(t *testing.T) {
			up := &recordingUpstream{}
			p, _ := meterFor(t, "/nonexistent/run/bottlecap.sock", "unmetered-sdk", newUpstream(t, up.ServeHTTP).URL, nil)
			requests, base := countedMeter(t, p)
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			status, shown, err := tt.call(ctx, base)
			if status != http.StatusForbidden || !strings.Contains(shown, "does not meter") {
				t.Fatalf("SDK error %v (shows %q), want a 403 saying bottlecap does not meter the call", err, shown)
			}
			refusedOnce(t, requests.Load(), int64(len(up.requests())))
		})
	}
}
