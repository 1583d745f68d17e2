package meter_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	aoption "github.com/anthropics/anthropic-sdk-go/option"
	"github.com/coder/websocket"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/packages/param"
	"github.com/openai/openai-go/v3/responses"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
)

// answerSeq numbers answeringUpstream's responses: report ids are the
// ledger's keys, unique across the tests' bottles.
var answerSeq atomic.Int64

// answeringUpstream is a fake provider that answers every API's
// non-streaming call with a short, whole response (10 input tokens, 5
// output), counting the requests that reach it.
func answeringUpstream(t *testing.T) (calls *atomic.Int64, url string) {
	t.Helper()
	calls = new(atomic.Int64)
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		id := fmt.Sprintf("_cap%d", answerSeq.Add(1))
		switch {
		case strings.HasSuffix(r.URL.Path, "/messages"):
			io.WriteString(w, `{"id":"msg`+id+`","type":"message","role":"assistant","model":"claude-haiku-4-5","content":[{"type":"text","text":"ok"}],"stop_reason":"end_turn","usage":{"input_tokens":10,"output_tokens":5}}`)
		case strings.HasSuffix(r.URL.Path, "/chat/completions"):
			io.WriteString(w, `{"id":"chatcmpl`+id+`","object":"chat.completion","created":1,"model":"gpt-5","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}}`)
		case strings.HasSuffix(r.URL.Path, "/responses"):
			io.WriteString(w, `{"id":"resp`+id+`","object":"response","status":"completed","model":"gpt-5","output":[{"type":"message","id":"msg_1","role":"assistant","status":"completed","content":[{"type":"output_text","text":"ok","annotations":[]}]}],"usage":{"input_tokens":10,"output_tokens":5,"total_tokens":15}}`)
		default: // Gemini
			io.WriteString(w, `{"candidates":[{"content":{"parts":[{"text":"ok"}],"role":"model"},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":5,"totalTokenCount":15},"responseId":"gem`+id+`"}`)
		}
	})
	return calls, up.URL
}

// cappedCalls are an agent's calls through the official SDKs (raw HTTP for
// Gemini, which has no Go SDK here), each stating an output cap of
// capTokens, or none when capTokens is 0 (Anthropic requires one: 8192,
// above the meter's output slice). Each returns the status of the API
// error it ended with (0: none) and the text that error shows.
var cappedCalls = []struct {
	name, provider string
	call           func(ctx context.Context, base string, capTokens int64) (int, string, error)
}{
	{"anthropic messages", "claude", func(ctx context.Context, base string, capTokens int64) (int, string, error) {
		if capTokens == 0 {
			capTokens = 8192
		}
		c := anthropic.NewClient(aoption.WithBaseURL(base), aoption.WithAPIKey("sk-ant-test"))
		_, err := c.Messages.New(ctx, anthropic.MessageNewParams{
			Model: "claude-haiku-4-5", MaxTokens: capTokens,
			Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))},
		})
		var e *anthropic.Error
		if errors.As(err, &e) {
			return e.StatusCode, e.Error(), err
		}
		return 0, "", err
	}},
	{"openai chat", "codex", func(ctx context.Context, base string, capTokens int64) (int, string, error) {
		c := openai.NewClient(option.WithBaseURL(base+"/v1/"), option.WithAPIKey("sk-test"))
		_, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model: "gpt-5", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
			MaxCompletionTokens: optCap(capTokens),
		})
		return openaiStatus(err)
	}},
	{"openai responses", "codex", func(ctx context.Context, base string, capTokens int64) (int, string, error) {
		c := openai.NewClient(option.WithBaseURL(base+"/v1/"), option.WithAPIKey("sk-test"))
		_, err := c.Responses.New(ctx, responses.ResponseNewParams{
			Model: "gpt-5", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")},
			MaxOutputTokens: optCap(capTokens),
		})
		return openaiStatus(err)
	}},
	{"chatgpt codex responses", "codex", func(ctx context.Context, base string, capTokens int64) (int, string, error) {
		_, err := chatgptClient(base).Responses.New(ctx, responses.ResponseNewParams{
			Model: "gpt-5", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")},
			MaxOutputTokens: optCap(capTokens),
		})
		return openaiStatus(err)
	}},
	{"gemini", "gemini", func(ctx context.Context, base string, capTokens int64) (int, string, error) {
		config := ""
		if capTokens > 0 {
			config = fmt.Sprintf(`,"generationConfig":{"maxOutputTokens":%d}`, capTokens)
		}
		body := `{"contents":[{"role":"user","parts":[{"text":"hi"}]}]` + config + `}`
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1beta/models/gemini-2.5-flash:generateContent", strings.NewReader(body))
		if err != nil {
			return 0, "", err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return resp.StatusCode, string(b), fmt.Errorf("status %d", resp.StatusCode)
		}
		return 0, "", nil
	}},
}

// optCap is an SDK's optional cap: omitted when 0.
func optCap(n int64) param.Opt[int64] {
	if n == 0 {
		return param.Opt[int64]{}
	}
	return openai.Int(n)
}

// openaiStatus is the status and message of an openai-go API error.
func openaiStatus(err error) (int, string, error) {
	var e *openai.Error
	if errors.As(err, &e) {
		return e.StatusCode, e.Message, err
	}
	return 0, "", err
}

// TestSDKStatedCapFitsSmallBudget: with 1,000 tokens left, a request that
// states no output cap (or one above the output slice) cannot be covered
// (its input estimate plus a 4,096-token output slice) and is refused
// before anything is sent; the same call stating max_tokens 200 (each
// API's field) is admitted, since its provider generates no more, and
// goes through.
func TestSDKStatedCapFitsSmallBudget(t *testing.T) {
	d := startDaemon(t)
	for i, tt := range cappedCalls {
		t.Run(tt.name, func(t *testing.T) {
			bottle := fmt.Sprintf("cap-small-%d", i)
			d.register(bottle, budget.Limits{tt.provider: budget.Lifetime(5000)})
			spend := api.Report{Report: budget.Report{ID: bottle + "-spend", Bottle: bottle, Agent: "implementer", Provider: tt.provider, Usage: budget.Usage{Input: 4000}}}
			if _, err := d.Client.Ingest(t.Context(), []api.Report{spend}); err != nil {
				t.Fatal(err)
			}
			calls, up := answeringUpstream(t)
			_, srv := meterFor(t, d.Sock, bottle, up, nil)
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()

			status, shown, err := tt.call(ctx, srv.URL, 0)
			if status != http.StatusTooManyRequests || !strings.Contains(shown, "output slice 4096") {
				t.Fatalf("without a cap: %v (shows %q), want a 429 naming the 4096-token output slice", err, shown)
			}
			if n := calls.Load(); n != 0 {
				t.Fatalf("the refused request reached the upstream (%d calls)", n)
			}
			if status, shown, err := tt.call(ctx, srv.URL, 200); err != nil {
				t.Fatalf("stating a cap of 200: %v (status %d, shows %q), want it admitted", err, status, shown)
			}
			if n := calls.Load(); n != 1 {
				t.Errorf("the upstream saw %d requests, want the capped one only", n)
			}
			eventually(t, "the capped request is reported", func() bool { return len(d.reports(bottle)) == 2 })
		})
	}
}

// cappedStreams are the official SDKs' streaming calls stating an output
// cap of 200 tokens, over the fake streams of cutCases (which never end).
var cappedStreams = sdkStreamsStating(200)

// capBound is the output (bytes of text) a stream whose request states a
// cap of 200 tokens may pass before the meter takes its upstream to ignore
// the cap: 8 bytes a token and 512 (meter/allowance.go).
const capBound = 200*8 + 512

// TestSDKStreamPastStatedCapIsCut: a request states a cap of 200 tokens
// and its upstream (a fake that ignores it) streams on. The meter, which
// admitted it on that cap, lets the 200 tokens' worth pass, and more, then
// cuts the stream once its output could no longer fit the cap: the SDK
// ends with an error saying so, the provider sees its connection closed,
// and the report counts at least what passed. The budget is far from
// spent: the cap, not the budget, cuts.
func TestSDKStreamPastStatedCapIsCut(t *testing.T) {
	d := startDaemon(t)
	for i, tt := range cappedStreams {
		t.Run(tt.name, func(t *testing.T) {
			bottle := fmt.Sprintf("cap-past-%d", i)
			d.register(bottle, budget.Limits{tt.cut.provider: budget.Lifetime(1_000_000)})
			seen, gone, err := tt.throughMeter(t, d, bottle, nil)
			if err == nil || !strings.Contains(err.Error(), "output cap the request states (200 tokens)") {
				t.Fatalf("the stream ended after %d deltas with %v; want the meter's error naming the cap", seen, err)
			}
			// Each delta is "tok " (4 bytes). The cut comes at the first read
			// past the bound: not before it, and within one read buffer of it.
			if seen*4 < capBound-4 || seen*4 > 2*capBound {
				t.Errorf("cut after %d deltas (%d bytes); want it just past %d bytes", seen, seen*4, capBound)
			}
			waitGone(t, gone)
			eventually(t, "the cut stream is reported", func() bool { return len(d.reports(bottle)) == 1 })
			if r := d.reports(bottle)[0]; r.Complete || r.Output < int64(seen) {
				t.Errorf("report %+v after %d deltas, want incomplete with at least a token a delta", r, seen)
			}
		})
	}
}

// TestStreamAtItsCapPassesWhole: a provider that honours a request's cap
// of 200 tokens streams exactly 200, which the meter's estimate, erring
// high, counts as more than 200. With 1,000 tokens left the request is
// admitted on its cap, its stream takes small extensions as its count
// passes the cap, and it ends whole, reported at the provider's counts.
func TestStreamAtItsCapPassesWhole(t *testing.T) {
	d := startDaemon(t)
	d.register("cap-whole", budget.Limits{"claude": budget.Lifetime(5000)})
	spend := api.Report{Report: budget.Report{ID: "cap-whole-spend", Bottle: "cap-whole", Agent: "implementer", Provider: "claude", Usage: budget.Usage{Input: 4000}}}
	if _, err := d.Client.Ingest(t.Context(), []api.Report{spend}); err != nil {
		t.Fatal(err)
	}
	up := newAnthropicStream(4, 200, time.Millisecond)
	_, srv := meterFor(t, d.Sock, "cap-whole", newUpstream(t, up.ServeHTTP).URL, nil)
	body := strings.Replace(anthropicRequest(400), `"max_tokens":32000`, `"max_tokens":200`, 1)
	r := postMessages(srv.URL, body, "whole")
	if r.status != http.StatusOK || strings.Contains(r.body, "event: error") || !strings.Contains(r.body, "message_stop") {
		t.Fatalf("got %d, ending %q; want the whole stream", r.status, lastLine(r.body))
	}
	eventually(t, "the stream is reported", func() bool { return len(d.reports("cap-whole")) == 2 })
	for _, rep := range d.reports("cap-whole") {
		if rep.ID != "cap-whole-spend" && (!rep.Complete || rep.Output != 200) {
			t.Errorf("report %+v, want complete with the provider's 200 output tokens", rep)
		}
	}
}

// TestWebSocketStatedCapFitsSmallBudget: over the Responses WebSocket, with
// 1,000 tokens left, a response.create without max_output_tokens is
// answered with an error event and never reaches the provider; the same
// create stating max_output_tokens 200 is admitted and answered.
func TestWebSocketStatedCapFitsSmallBudget(t *testing.T) {
	d := startDaemon(t)
	d.register("ws-cap", budget.Limits{"codex": budget.Lifetime(1000)})
	up := &wsUpstream{}
	_, srv := meterFor(t, d.Sock, "ws-cap", newUpstream(t, up.ServeHTTP).URL, nil)
	client := openai.NewClient(option.WithBaseURL(srv.URL+"/v1/"), option.WithAPIKey("sk-test"), option.WithMaxRetries(0))
	conn, err := client.Responses.Connect(t.Context(), responses.ResponseConnectionOptions{})
	if err != nil {
		t.Fatalf("connect through the meter: %v", err)
	}
	defer conn.Close()
	for _, capTokens := range []int64{0, 200} {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		err := conn.Create(ctx, responses.ResponsesClientEventResponseCreateParam{
			Model: "gpt-5", Input: responses.ResponsesClientEventResponseCreateInputUnionParam{OfString: openai.String("say hello")},
			MaxOutputTokens: optCap(capTokens),
		})
		if err != nil {
			t.Fatalf("send response.create: %v", err)
		}
		var status int64
		var msg string
	read:
		for {
			ev, err := conn.Recv(ctx)
			if err != nil {
				t.Fatalf("recv: %v", err)
			}
			switch ev.Type {
			case "error":
				e := ev.AsResponsesServerEventResponseWsError()
				status, msg = e.Status, e.Error.Message
				break read
			case "response.completed":
				break read
			}
		}
		cancel()
		switch {
		case capTokens == 0 && (status != 429 || !strings.Contains(msg, "output slice 4096")):
			t.Errorf("without a cap: error %d %q, want a 429 naming the output slice", status, msg)
		case capTokens > 0 && status != 0:
			t.Errorf("with max_output_tokens %d: error %d %q, want it admitted", capTokens, status, msg)
		}
	}
	if n := up.creates.Load(); n != 1 {
		t.Errorf("the upstream received %d response.create, want the capped one only", n)
	}
}

// TestWebSocketResponsePastStatedCapIsCut: a response.create states
// max_output_tokens 200 and the upstream streams on past what 200 tokens
// hold; the meter cuts that response as it cuts an HTTP stream: an error
// event naming the cap, the upstream socket closed, the response reported
// incomplete.
func TestWebSocketResponsePastStatedCapIsCut(t *testing.T) {
	d := startDaemon(t)
	d.register("ws-cap-past", budget.Limits{"codex": budget.Lifetime(1_000_000)})
	gone := make(chan struct{})
	const delta = "tok tok tok tok tok tok tok tok " // 32 bytes an event
	up := newUpstream(t, endlessDeltas("resp_ws_cap_past", delta, time.Millisecond, gone))
	_, srv := meterFor(t, d.Sock, "ws-cap-past", up.URL, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/v1/responses", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"type":"response.create","model":"gpt-5","max_output_tokens":200}`)); err != nil {
		t.Fatal(err)
	}
	seen, last := 0, ""
	for {
		_, msg, err := c.Read(ctx)
		if err != nil {
			break
		}
		if strings.Contains(string(msg), "tok ") {
			seen++
		}
		last = string(msg)
	}
	if !strings.Contains(last, `"type":"error"`) || !strings.Contains(last, "output cap the request states (200 tokens)") {
		t.Fatalf("after %d deltas the last message was %s, want an error event naming the cap", seen, last)
	}
	if seen*len(delta) < capBound-len(delta) || seen*len(delta) > 2*capBound {
		t.Errorf("cut after %d deltas (%d bytes); want it just past %d bytes", seen, seen*len(delta), capBound)
	}
	waitGone(t, gone)
	eventually(t, "the cut response is reported", func() bool { return len(d.reports("ws-cap-past")) == 1 })
	if r := d.reports("ws-cap-past")[0]; r.Complete || r.Output < int64(seen*len(delta)/4) {
		t.Errorf("report %+v after %d deltas, want incomplete, at least a token per 4 bytes that passed", r, seen)
	}
}

// TestCompactionCapNotTrusted: remote compaction takes no
// max_output_tokens, so one sent there bounds nothing: with 1,000 tokens
// left the call still needs a whole output slice and is refused.
func TestCompactionCapNotTrusted(t *testing.T) {
	d := startDaemon(t)
	d.register("cap-compact", budget.Limits{"codex": budget.Lifetime(1000)})
	calls, up := answeringUpstream(t)
	_, srv := meterFor(t, d.Sock, "cap-compact", up, nil)
	resp := post(t, srv.URL+"/v1/responses/compact", `{"model":"gpt-5","input":"hi","max_output_tokens":200}`)
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(b), "output slice 4096") {
		t.Errorf("got %d %s, want a 429 naming the whole output slice", resp.StatusCode, b)
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("the refused call reached the upstream (%d calls)", n)
	}
	// The same cap on /v1/responses is trusted.
	if resp := post(t, srv.URL+"/v1/responses", `{"model":"gpt-5","input":"hi","max_output_tokens":200}`); resp.StatusCode != http.StatusOK {
		t.Errorf("a response stating max_output_tokens 200 got %d, want it admitted", resp.StatusCode)
	}
}
