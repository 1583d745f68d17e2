package meter_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	aoption "github.com/anthropics/anthropic-sdk-go/option"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"github.com/bot-bottle/bottlecap/budget"
)

// formatUpstream answers every POST with a response of the format its
// path calls — 11 input and 7 output tokens under a fresh id each time —
// and records the path and query it was asked, as the upstream saw them.
type formatUpstream struct {
	mu   sync.Mutex
	n    int
	seen []string
}

func (u *formatUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	u.mu.Lock()
	u.n++
	n := u.n
	seen := r.Method + " " + r.URL.EscapedPath()
	if r.URL.RawQuery != "" {
		seen += "?" + r.URL.RawQuery
	}
	u.seen = append(u.seen, seen)
	u.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	p := r.URL.Path
	gemini := `{"candidates":[{"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":11,"candidatesTokenCount":7},"modelVersion":"gemini-2.5-flash"`
	switch {
	case strings.HasPrefix(p, "/v1internal:"): // Code Assist wraps Gemini's response
		fmt.Fprintf(w, `{"response":%s},"traceId":"trace-%d"}`, gemini, n)
	case strings.HasSuffix(p, "enerateContent"):
		fmt.Fprintf(w, `%s,"responseId":"gem-%d"}`, gemini, n)
	case strings.HasSuffix(p, "/messages"):
		fmt.Fprintf(w, `{"id":"msg_%d","type":"message","model":"claude-haiku-4-5","usage":{"input_tokens":11,"output_tokens":7}}`, n)
	case strings.Contains(p, "/responses"):
		fmt.Fprintf(w, `{"id":"resp_%d","object":"response","model":"gpt-5","usage":{"input_tokens":11,"output_tokens":7,"total_tokens":18}}`, n)
	default: // Chat, and Gemini's OpenAI compatibility layer
		fmt.Fprintf(w, `{"id":"chatcmpl-%d","object":"chat.completion","model":"gpt-5","choices":[{"finish_reason":"stop"}],"usage":{"prompt_tokens":11,"completion_tokens":7}}`, n)
	}
}

func (u *formatUpstream) requests() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.seen...)
}

// at is the i-th of seen, or "" when there are fewer.
func at(seen []string, i int) string {
	if i < len(seen) {
		return seen[i]
	}
	return ""
}

// rawRequest sends one request with its request-target written exactly
// as given (no client cleans or escapes it) and returns the response.
func rawRequest(t *testing.T, base, method, target, body string, header http.Header) (*http.Response, []byte) {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	var h strings.Builder
	header.Write(&h)
	fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n%s\r\n%s",
		method, target, u.Host, len(body), h.String(), body)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// TestMeteredUnderAnySpelling: a generation call sent under any spelling
// an upstream may fold to it — doubled, trailing or escaped slashes, "."
// and "..", a backslash, ";params", letter case, escapes decoded once or
// twice, a query — is metered (one report of its usage in the ledger) and
// reaches the upstream as the table spells the call, the query kept.
// Gemini is metered on every model path the API takes, and Gemini CLI's
// Code Assist call, whose response wraps the usage, too.
func TestMeteredUnderAnySpelling(t *testing.T) {
	d := startDaemon(t)
	const bottle = "spellings-1"
	d.register(bottle, budget.Limits{"claude": budget.Lifetime(1e6), "codex": budget.Lifetime(1e6), "gemini": budget.Lifetime(1e6)})
	up := &formatUpstream{}
	_, srv := meterFor(t, d.Sock, bottle, newUpstream(t, up.ServeHTTP).URL, nil)
	anthropicHeader := http.Header{"Anthropic-Version": {"2023-06-01"}}
	tests := []struct {
		target, want string
		header       http.Header
	}{
		{"/v1/messages?beta=true", "/v1/messages?beta=true", anthropicHeader}, // what Claude Code sends
		{"/v1/messages/", "/v1/messages", anthropicHeader},
		{"//v1/messages", "/v1/messages", anthropicHeader},
		{"/v1/./messages", "/v1/messages", anthropicHeader},
		{"/v1/models/../messages", "/v1/messages", anthropicHeader},
		{"/v1/messages%2F", "/v1/messages", anthropicHeader},
		{"/v1/messages%252F", "/v1/messages", anthropicHeader},
		{"/v1/mess%61ges", "/v1/messages", anthropicHeader},
		{"/V1/Messages", "/v1/messages", anthropicHeader},
		{"/v1/messages;x=1", "/v1/messages", anthropicHeader},
		{`/v1\messages`, "/v1/messages", anthropicHeader},
		{"/v1/responses/", "/v1/responses", nil},
		{"/v1/chat/completions//", "/v1/chat/completions", nil},
		{"/v1/Responses/Compact", "/v1/responses/compact", nil},
		{"/backend-api/codex//responses", "/backend-api/codex/responses", nil},
		{"/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", nil},
		{"/v1/models/gemini-2.5-flash:generateContent", "/v1/models/gemini-2.5-flash:generateContent", nil},
		{"/v1alpha/models/gemini-2.5-flash:generateContent", "/v1alpha/models/gemini-2.5-flash:generateContent", nil},
		{"/v1beta/tunedModels/my-model-1:streamGenerateContent", "/v1beta/tunedModels/my-model-1:streamGenerateContent", nil},
		{"/v1beta/dynamic/gemini-flash:generateContent", "/v1beta/dynamic/gemini-flash:generateContent", nil},
		{"/v1beta/models/gemini-2.5-flash:GENERATECONTENT/", "/v1beta/models/gemini-2.5-flash:generateContent", nil},
		{"/v1beta/models/gemini-2.5-flash%3AgenerateContent", "/v1beta/models/gemini-2.5-flash:generateContent", nil},
		{"/v1beta/openai/chat/completions", "/v1beta/openai/chat/completions", nil},
		{"/v1beta:chatCompletions", "/v1beta:chatCompletions", nil},
		{"/v1internal:streamGenerateContent?alt=sse", "/v1internal:streamGenerateContent?alt=sse", nil},
		{"/v1internal:generateContent/", "/v1internal:generateContent", nil},
	}
	for _, tt := range tests {
		resp, b := rawRequest(t, srv.URL, http.MethodPost, tt.target, `{"model":"m","contents":[],"messages":[]}`, tt.header)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: got %d %s, want the upstream's answer", tt.target, resp.StatusCode, b)
		}
	}
	seen := up.requests()
	for i, tt := range tests {
		if got := at(seen, i); got != "POST "+tt.want {
			t.Errorf("%s reached the upstream as %q, want POST %s", tt.target, got, tt.want)
		}
	}
	eventually(t, "every call is reported", func() bool { return len(d.reports(bottle)) == len(tests) })
	for _, r := range d.reports(bottle) {
		if r.Usage.Input != 11 || r.Usage.Output != 7 {
			t.Errorf("report %s: usage %+v, want 11 in and 7 out as the upstream counted", r.ID, r.Usage)
		}
	}
}

// TestMethodsOnMeteredEndpoints: only a POST is metered. A bodiless read
// of a metered endpoint (OpenAI lists stored chat completions with a GET)
// goes on unmetered; anything else that could carry a prompt there or to
// an unmetered call — a PUT, a PATCH, a GET or DELETE with a body — is
// refused with 403 in the API's shape, and nothing reaches the upstream.
func TestMethodsOnMeteredEndpoints(t *testing.T) {
	p, base, up := unmeteredMeter(t)
	refused := []struct{ method, path, family string }{
		{http.MethodPut, "/v1/messages", "anthropic"},
		{http.MethodPatch, "/v1/chat/completions", "openai"},
		{http.MethodGet, "/v1/responses", "openai"},
		{http.MethodDelete, "/v1beta/models/gemini-2.5-flash:generateContent", "gemini"},
		{http.MethodPut, "/v1internal:streamGenerateContent", "codeassist"},
		{http.MethodPut, "/v1/embeddings", "openai"},
	}
	for _, c := range refused {
		resp, b := rawRequest(t, base, c.method, c.path, `{"model":"m"}`, nil)
		shape := c.family
		if shape == "codeassist" {
			shape = "gemini"
		}
		msg, kind := errorShape(t, shape, b)
		if resp.StatusCode != http.StatusForbidden || kind != unmeteredKind[shape] || !strings.Contains(msg, c.method+" "+c.path) {
			t.Errorf("%s %s: got %d %s, want 403 %s naming the request", c.method, c.path, resp.StatusCode, b, unmeteredKind[shape])
		}
	}
	if seen := up.requests(); len(seen) != 0 {
		t.Errorf("refused requests reached the upstream: %v", seen)
	}
	for _, method := range []string{http.MethodGet, http.MethodHead, http.MethodOptions} {
		if resp, b := rawRequest(t, base, method, "/v1/chat/completions", "", nil); resp.StatusCode != http.StatusOK {
			t.Errorf("%s /v1/chat/completions: got %d %s, want the upstream's answer", method, resp.StatusCode, b)
		}
	}
	if seen := up.requests(); len(seen) != 3 {
		t.Errorf("the upstream saw %v, want the three bodiless reads", seen)
	}
	if n := p.Pending(); n != 0 {
		t.Errorf("%d reports queued for reads, which are not metered", n)
	}
}

// TestSDKBaseURLSpellings: the official SDKs, pointed at the meter under
// a base URL with a doubled slash (which they send on as it is:
// //v1/messages, /v1//chat/completions), and the Anthropic SDK's beta
// call (/v1/messages?beta=true, as Claude Code sends it), are metered:
// the upstream is asked the call as the table spells it, and each call is
// reported with its usage.
func TestSDKBaseURLSpellings(t *testing.T) {
	d := startDaemon(t)
	const bottle = "sdk-spellings-1"
	d.register(bottle, budget.Limits{"claude": budget.Lifetime(1e6), "codex": budget.Lifetime(1e6)})
	up := &formatUpstream{}
	_, srv := meterFor(t, d.Sock, bottle, newUpstream(t, up.ServeHTTP).URL, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	msg := anthropic.MessageNewParams{Model: "claude-haiku-4-5", MaxTokens: 64,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))}}
	calls := []struct {
		name, want string
		call       func() error
	}{
		{"anthropic, base URL with a doubled slash", "/v1/messages", func() error {
			c := anthropic.NewClient(aoption.WithBaseURL(srv.URL+"//"), aoption.WithAPIKey("k"))
			_, err := c.Messages.New(ctx, msg)
			return err
		}},
		{"anthropic beta messages", "/v1/messages?beta=true", func() error {
			c := anthropic.NewClient(aoption.WithBaseURL(srv.URL), aoption.WithAPIKey("k"))
			_, err := c.Beta.Messages.New(ctx,
				anthropic.BetaMessageNewParams{Model: "claude-haiku-4-5", MaxTokens: 64,
					Messages: []anthropic.BetaMessageParam{anthropic.NewBetaUserMessage(anthropic.NewBetaTextBlock("hi"))}})
			return err
		}},
		{"openai chat, base URL with a doubled slash", "/v1/chat/completions", func() error {
			c := openai.NewClient(option.WithBaseURL(srv.URL+"/v1//"), option.WithAPIKey("k"))
			_, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "gpt-5",
				Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}})
			return err
		}},
		{"openai responses, base URL with a doubled slash", "/v1/responses", func() error {
			c := openai.NewClient(option.WithBaseURL(srv.URL+"//v1/"), option.WithAPIKey("k"))
			_, err := c.Responses.New(ctx, responses.ResponseNewParams{Model: "gpt-5",
				Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")}})
			return err
		}},
	}
	for _, c := range calls {
		if err := c.call(); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	seen := up.requests()
	for i, c := range calls {
		if got := at(seen, i); got != "POST "+c.want {
			t.Errorf("%s reached the upstream as %q, want POST %s", c.name, got, c.want)
		}
	}
	eventually(t, "every call is reported", func() bool { return len(d.reports(bottle)) == len(calls) })
}

// TestWebSocketUnderAnotherSpelling: the Responses WebSocket opened under
// a base URL with a doubled slash (/v1//responses, as openai-go sends it)
// is the metered WebSocket: the upstream's handshake is for
// /v1/responses, and its response is reported.
func TestWebSocketUnderAnotherSpelling(t *testing.T) {
	d := startDaemon(t)
	d.register("ws-spelling-1", budget.Limits{"codex": budget.Lifetime(1e6)})
	up := &wsUpstream{}
	var paths sync.Map
	upSrv := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		paths.Store(r.URL.EscapedPath(), true)
		up.ServeHTTP(w, r)
	})
	_, srv := meterFor(t, d.Sock, "ws-spelling-1", upSrv.URL, nil)
	client := openai.NewClient(option.WithBaseURL(srv.URL+"/v1//"), option.WithAPIKey("sk-test"), option.WithMaxRetries(0))
	conn, err := client.Responses.Connect(t.Context(), responses.ResponseConnectionOptions{})
	if err != nil {
		t.Fatalf("connect through the meter: %v", err)
	}
	defer conn.Close()
	if text, status, msg := wsTurn(t, conn, "gpt-5"); status != 0 || text != "hello 1" {
		t.Fatalf("text %q, error %d %q; want the upstream's text", text, status, msg)
	}
	var seen []string
	paths.Range(func(k, _ any) bool { seen = append(seen, k.(string)); return true })
	if len(seen) != 1 || seen[0] != "/v1/responses" {
		t.Errorf("the upstream's handshakes were for %v, want /v1/responses", seen)
	}
	eventually(t, "the response is reported", func() bool { return len(d.reports("ws-spelling-1")) == 1 })
}

// TestUnreadableAnswersRefused: a Gemini or Code Assist generation call
// that asks Google's system parameters for an answer the meter could not
// read the usage of — protocol buffers (alt=proto, $alt), filtered fields
// (fields, $fields, X-Goog-FieldMask) — is refused with 403 before the
// upstream; alt=sse and alt=json are metered.
func TestUnreadableAnswersRefused(t *testing.T) {
	d := startDaemon(t)
	const bottle = "shape-1"
	d.register(bottle, budget.Limits{"gemini": budget.Lifetime(1e6)})
	up := &formatUpstream{}
	_, srv := meterFor(t, d.Sock, bottle, newUpstream(t, up.ServeHTTP).URL, nil)
	const gen = "/v1beta/models/gemini-2.5-flash:generateContent"
	for _, c := range []struct {
		target string
		header http.Header
	}{
		{gen + "?alt=proto", nil},
		{gen + "?%24alt=proto", nil},
		{gen + "?fields=candidates", nil},
		{gen + "?alt=sse&$fields=candidates.content", nil},
		{"/v1internal:streamGenerateContent?alt=proto", nil},
		{"/v1beta/openai/chat/completions?fields=choices", nil},
		{gen, http.Header{"X-Goog-Fieldmask": {"candidates"}}},
	} {
		resp, b := rawRequest(t, srv.URL, http.MethodPost, c.target, `{"contents":[]}`, c.header)
		msg, kind := errorShape(t, "gemini", b)
		if resp.StatusCode != http.StatusForbidden || kind != "PERMISSION_DENIED" || !strings.Contains(msg, "cannot read the usage") {
			t.Errorf("%s %v: got %d %s, want 403 PERMISSION_DENIED saying the usage could not be read", c.target, c.header, resp.StatusCode, b)
		}
	}
	if seen := up.requests(); len(seen) != 0 {
		t.Errorf("refused calls reached the upstream: %v", seen)
	}
	for _, target := range []string{gen + "?alt=json", gen + "?alt=SSE"} {
		if resp, b := rawRequest(t, srv.URL, http.MethodPost, target, `{"contents":[]}`, nil); resp.StatusCode != http.StatusOK {
			t.Errorf("%s: got %d %s, want it metered", target, resp.StatusCode, b)
		}
	}
	eventually(t, "both calls are reported", func() bool { return len(d.reports(bottle)) == 2 })
}
