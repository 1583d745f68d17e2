package meter_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	aoption "github.com/anthropics/anthropic-sdk-go/option"
	"github.com/coder/websocket"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/client"
	"github.com/bot-bottle/bottlecap/controller"
	"github.com/bot-bottle/bottlecap/daemon/daemontest"
	"github.com/bot-bottle/bottlecap/meter"
)

// tokenEvery is the fake upstreams' token rate: one content delta of one
// token per tick.
const tokenEvery = 2 * time.Millisecond

// ratedStream is a fake provider streaming a response that never ends on
// its own: head first, then delta(i) every tokenEvery, until its
// connection is closed. gone is closed when it sees that happen (a write
// fails or the request's context ends), which is how the provider learns
// to stop generating.
func ratedStream(head []string, delta func(i int) string) (h http.HandlerFunc, gone <-chan struct{}) {
	closed := make(chan struct{})
	var once sync.Once
	return func(w http.ResponseWriter, r *http.Request) {
		defer once.Do(func() { close(closed) })
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		for _, ev := range head {
			if _, err := io.WriteString(w, ev); err != nil {
				return
			}
		}
		tick := time.NewTicker(tokenEvery)
		defer tick.Stop()
		for i := 0; ; i++ {
			if _, err := io.WriteString(w, delta(i)); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-tick.C:
			}
		}
	}, closed
}

// cutCase is one provider stream format: the request, the fake stream,
// how the client's final error event is marked, and the least the cut
// report must count once the client has seen n deltas.
type cutCase struct {
	name, path, provider, body string
	head                       []string
	delta                      func(i int) string
	marker                     string // how the last event begins
	floor                      func(seen int) budget.Usage
}

var cutCases = []cutCase{
	{
		name: "anthropic", path: "/v1/messages", provider: "claude",
		// max_tokens well above what these endless fakes stream before a
		// test cuts them: past a stated cap the meter cuts on its own
		// (TestSDKStreamPastStatedCapIsCut).
		body: `{"model":"claude-haiku-4-5","max_tokens":32000,"stream":true,"messages":[{"role":"user","content":"hi"}]}`,
		head: []string{
			"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_cut\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-haiku-4-5\",\"content\":[],\"stop_reason\":null,\"usage\":{\"input_tokens\":100,\"output_tokens\":1}}}\n\n",
			"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
		},
		delta: func(int) string {
			return "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"tok \"}}\n\n"
		},
		marker: "event: error\ndata: {",
		// message_start's input; the output counted from the deltas that
		// passed (4 bytes each, a token or more by the estimator's prior),
		// not message_start's placeholder.
		floor: func(seen int) budget.Usage { return budget.Usage{Input: 100, Output: int64(seen)} },
	},
	{
		name: "openai chat", path: "/v1/chat/completions", provider: "codex",
		body: `{"model":"gpt-5","stream":true,"messages":[{"role":"user","content":"hi"}]}`,
		delta: func(int) string {
			return `data: {"id":"chatcmpl-cut","object":"chat.completion.chunk","created":1,"model":"gpt-5","choices":[{"index":0,"delta":{"content":"tok "},"finish_reason":null}]}` + "\n\n"
		},
		marker: `data: {"error":{`,
		// Chat sends its counts only at the end: the input is the
		// request's estimate, the output counted from the deltas.
		floor: func(seen int) budget.Usage { return budget.Usage{Input: 1, Output: int64(seen)} },
	},
	responsesCut("openai responses", "/v1/responses", "resp_cut"),
	responsesCut("chatgpt codex responses", "/backend-api/codex/responses", "resp_cut_chatgpt"),
	{
		name: "gemini", path: "/v1beta/models/gemini-2.5-pro:streamGenerateContent", provider: "gemini",
		body: `{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}`,
		delta: func(i int) string {
			return fmt.Sprintf(`data: {"candidates":[{"content":{"parts":[{"text":"tok "}],"role":"model"},"index":0}],"usageMetadata":{"promptTokenCount":100,"candidatesTokenCount":%d,"totalTokenCount":%d},"modelVersion":"gemini-2.5-pro","responseId":"gem_cut"}`+"\r\n\r\n", i+1, 101+i)
		},
		marker: `data: {"error":{`,
		// Every chunk carries the cumulative counts: at least what passed.
		floor: func(seen int) budget.Usage { return budget.Usage{Input: 100, Output: int64(seen)} },
	},
}

// responsesCut is the OpenAI Responses stream format at path (the API's,
// or Codex's on ChatGPT), under response id (report ids are the ledger's
// keys: each case needs its own).
func responsesCut(name, path, id string) cutCase {
	return cutCase{
		name: name, path: path, provider: "codex",
		body: `{"model":"gpt-5","stream":true,"input":"hi"}`,
		head: []string{
			"event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"" + id + "\",\"object\":\"response\",\"status\":\"in_progress\",\"model\":\"gpt-5\",\"output\":[],\"usage\":null}}\n\n",
		},
		delta: func(i int) string {
			return fmt.Sprintf("event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":%d,\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"delta\":\"tok \"}\n\n", i+1)
		},
		marker: "event: response.failed\ndata: {",
		// As for Chat: the counts come with response.completed.
		floor: func(seen int) budget.Usage { return budget.Usage{Input: 1, Output: int64(seen)} },
	}
}

// postStream posts body to url and returns the response, whose reading
// fails (rather than hangs) if the stream is not over within 20 s.
func postStream(t *testing.T, url, body string) *http.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// sseReader reads server-sent events one at a time.
type sseReader struct{ br *bufio.Reader }

// next returns the next event with its blank line, in LF line endings, and
// io.EOF after the last one.
func (r sseReader) next() (string, error) {
	var ev strings.Builder
	for {
		line, err := r.br.ReadString('\n')
		ev.WriteString(strings.ReplaceAll(line, "\r\n", "\n"))
		if err != nil {
			if err == io.EOF && ev.Len() > 0 {
				err = io.ErrUnexpectedEOF
			}
			return ev.String(), err
		}
		if line == "\n" || line == "\r\n" {
			return ev.String(), nil
		}
	}
}

// readStream reads an event stream to its end, calling onDelta with the
// number of content deltas seen after each one, and returns that number
// and the last event. The stream must end cleanly.
func readStream(t *testing.T, body io.Reader, onDelta func(seen int)) (seen int, last string) {
	t.Helper()
	events := sseReader{bufio.NewReader(body)}
	for {
		ev, err := events.next()
		if err == io.EOF {
			return seen, last
		}
		if err != nil {
			t.Fatalf("the stream broke or hung instead of ending cleanly: %v (after %q)", err, last)
		}
		if strings.Contains(ev, "tok ") {
			seen++
			onDelta(seen)
		}
		last = ev
	}
}

// cutoff has an operator cut the bottle off, as `bottlecap cutoff` does.
func (d *daemon) cutoff(bottle, reason string) {
	d.t.Helper()
	if _, err := d.Client.Act(context.Background(), bottle, api.ActionRequest{Action: "cutoff", Reason: reason}); err != nil {
		d.t.Fatalf("cutoff %s: %v", bottle, err)
	}
}

// waitGone waits until the fake upstream has seen its connection closed.
func waitGone(t *testing.T, gone <-chan struct{}) {
	t.Helper()
	select {
	case <-gone:
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream's connection stayed open: the provider would go on generating")
	}
}

// TestOperatorCutoffEndsLiveStream: for each provider format, a stream is
// live when an operator cuts the bottle off. The upstream sees its
// connection closed, the client gets one final error event in the
// provider's format naming the bottle's state and reason and then a clean
// end of stream, and the ledger holds the report, incomplete, with at
// least what passed.
func TestOperatorCutoffEndsLiveStream(t *testing.T) {
	d := startDaemon(t)
	for i, tt := range cutCases {
		t.Run(tt.name, func(t *testing.T) {
			bottle := fmt.Sprintf("cut-live-%d", i)
			d.register(bottle, nil)
			h, gone := ratedStream(tt.head, tt.delta)
			up := newUpstream(t, h)
			_, srv := meterFor(t, d.Sock, bottle, up.URL, nil)
			resp := postStream(t, srv.URL+tt.path, tt.body)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d, want the upstream's 200", resp.StatusCode)
			}
			seen, last := readStream(t, resp.Body, func(seen int) {
				if seen == 3 {
					d.cutoff(bottle, "runaway agent")
				}
			})
			if !strings.HasPrefix(last, tt.marker) {
				t.Errorf("last event %q, want the provider's error event (%q…)", last, tt.marker)
			}
			for _, part := range []string{"bottle " + bottle + " is pending", "runaway agent"} {
				if !strings.Contains(last, part) {
					t.Errorf("last event %q does not say %q", last, part)
				}
			}
			waitGone(t, gone)
			eventually(t, "the cut stream is reported", func() bool { return len(d.reports(bottle)) == 1 })
			r, floor := d.reports(bottle)[0], tt.floor(seen)
			if r.Complete || r.Provider != tt.provider || r.Input < floor.Input || r.Output < floor.Output {
				t.Errorf("report %+v, want incomplete, %s, input ≥ %d, output ≥ %d", r, tt.provider, floor.Input, floor.Output)
			}
		})
	}
}

// sdkStream is an official SDK's streaming call over the fake stream of
// its cutCase, read to its end: it calls onDelta after each text delta and
// returns the error the stream ended with.
type sdkStream struct {
	name string
	cut  cutCase
	run  func(ctx context.Context, base string, onDelta func()) error
}

// sdkStreams state no output cap where the API allows none (Anthropic,
// which requires one, states cutCases[0]'s 32000).
var sdkStreams = sdkStreamsStating(0)

// sdkStreamsStating are the SDKs' streaming calls stating an output cap of
// capTokens (0: as sdkStreams).
func sdkStreamsStating(capTokens int64) []sdkStream {
	anthropicCap := capTokens
	if anthropicCap == 0 {
		anthropicCap = 32000 // as cutCases[0]
	}
	chat := openai.ChatCompletionNewParams{
		Model: "gpt-5", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
	}
	resp := responses.ResponseNewParams{
		Model: "gpt-5", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")},
	}
	if capTokens > 0 {
		chat.MaxCompletionTokens = openai.Int(capTokens)
		resp.MaxOutputTokens = openai.Int(capTokens)
	}
	return []sdkStream{
		{"anthropic messages", cutCases[0], func(ctx context.Context, base string, onDelta func()) error {
			c := anthropic.NewClient(aoption.WithBaseURL(base), aoption.WithAPIKey("sk-ant-test"))
			s := c.Messages.NewStreaming(ctx, anthropic.MessageNewParams{
				Model: "claude-haiku-4-5", MaxTokens: anthropicCap,
				Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))},
			})
			for s.Next() {
				if s.Current().Delta.Text != "" {
					onDelta()
				}
			}
			return s.Err()
		}},
		{"openai chat", cutCases[1], func(ctx context.Context, base string, onDelta func()) error {
			c := openai.NewClient(option.WithBaseURL(base+"/v1/"), option.WithAPIKey("sk-test"))
			s := c.Chat.Completions.NewStreaming(ctx, chat)
			for s.Next() {
				if ch := s.Current(); len(ch.Choices) > 0 && ch.Choices[0].Delta.Content != "" {
					onDelta()
				}
			}
			return s.Err()
		}},
		{"openai responses", cutCases[2], func(ctx context.Context, base string, onDelta func()) error {
			c := openai.NewClient(option.WithBaseURL(base+"/v1/"), option.WithAPIKey("sk-test"))
			return readResponses(ctx, &c, resp, onDelta)
		}},
		{"chatgpt codex responses", cutCases[3], func(ctx context.Context, base string, onDelta func()) error {
			return readResponses(ctx, chatgptClient(base), resp, onDelta)
		}},
	}
}

// throughMeter runs the stream through a meter for bottle, over an
// upstream that streams tt's deltas without end, calling onDelta with the
// count of deltas seen so far after each. It returns how many the SDK saw,
// the error it ended with, and the upstream's gone (closed when it saw
// its connection close). A stream still running after 60 s fails the
// test: the meter let it hang.
func (tt sdkStream) throughMeter(t *testing.T, d *daemon, bottle string, onDelta func(seen int)) (seen int, gone <-chan struct{}, err error) {
	t.Helper()
	h, gone := ratedStream(tt.cut.head, tt.cut.delta)
	_, srv := meterFor(t, d.Sock, bottle, newUpstream(t, h).URL, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	err = tt.run(ctx, srv.URL, func() {
		seen++
		if onDelta != nil {
			onDelta(seen)
		}
	})
	if ctx.Err() != nil {
		t.Fatalf("the SDK's stream hung until the test's deadline (%d deltas seen)", seen)
	}
	return seen, gone, err
}

// readResponses streams a Responses call to its end, calling onDelta after
// each text delta, and returns the error it ended with.
func readResponses(ctx context.Context, c *openai.Client, params responses.ResponseNewParams, onDelta func()) error {
	s := c.Responses.NewStreaming(ctx, params)
	for s.Next() {
		if s.Current().Type == "response.output_text.delta" {
			onDelta()
		}
	}
	return s.Err()
}

// TestSDKStreamCutIsAnError: an official SDK streaming through the meter
// when the bottle is cut off ends its stream with an error naming the
// bottle's state and the reason, not a hang and not a clean end.
func TestSDKStreamCutIsAnError(t *testing.T) {
	d := startDaemon(t)
	for i, tt := range sdkStreams {
		t.Run(tt.name, func(t *testing.T) {
			bottle := fmt.Sprintf("cut-sdk-%d", i)
			d.register(bottle, nil)
			seen, gone, err := tt.throughMeter(t, d, bottle, func(seen int) {
				if seen == 3 {
					d.cutoff(bottle, "runaway agent")
				}
			})
			if err == nil {
				t.Fatalf("the SDK's stream ended cleanly after %d deltas; want an error", seen)
			}
			for _, part := range []string{"bottle " + bottle + " is pending", "runaway agent"} {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("the SDK's error %q does not say %q", err, part)
				}
			}
			waitGone(t, gone)
		})
	}
}

// TestCutoffLeavesOtherBottlesStreams: two meters, two bottles, a stream
// each; cutting one bottle off ends its stream only. The other stream
// goes on well past the cut and finishes whole.
func TestCutoffLeavesOtherBottlesStreams(t *testing.T) {
	d := startDaemon(t)
	tt := cutCases[0]
	d.register("cut-mine", nil)
	d.register("cut-other", nil)
	h, gone := ratedStream(tt.head, tt.delta)
	_, mine := meterFor(t, d.Sock, "cut-mine", newUpstream(t, h).URL, nil)
	finish := make(chan struct{})
	other := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for _, ev := range tt.head {
			io.WriteString(w, strings.Replace(ev, "msg_cut", "msg_other", 1))
		}
		for i := 0; ; i++ {
			io.WriteString(w, tt.delta(i))
			w.(http.Flusher).Flush()
			select {
			case <-finish:
				io.WriteString(w, "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":50}}\n\n")
				io.WriteString(w, "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")
				return
			case <-r.Context().Done():
				return
			case <-time.After(tokenEvery):
			}
		}
	})
	_, theirs := meterFor(t, d.Sock, "cut-other", other.URL, nil)

	// The other bottle's stream is live when this one is cut, and reads
	// 20 more tokens before its upstream finishes it.
	otherResp := postStream(t, theirs.URL+tt.path, tt.body)
	otherEvents := sseReader{bufio.NewReader(otherResp.Body)}
	for ev := ""; !strings.Contains(ev, "tok "); {
		var err error
		if ev, err = otherEvents.next(); err != nil {
			t.Fatalf("the other stream: %v", err)
		}
	}
	resp := postStream(t, mine.URL+tt.path, tt.body)
	_, last := readStream(t, resp.Body, func(seen int) {
		if seen == 3 {
			d.cutoff("cut-mine", "runaway agent")
		}
	})
	_, otherLast := readStream(t, otherEvents.br, func(seen int) {
		if seen == 20 {
			close(finish)
		}
	})
	if !strings.HasPrefix(last, tt.marker) {
		t.Errorf("the cut bottle's last event %q, want the error event", last)
	}
	waitGone(t, gone)
	if !strings.Contains(otherLast, "message_stop") {
		t.Errorf("the other bottle's stream ended with %q, want its own message_stop", otherLast)
	}
	eventually(t, "the other stream is reported", func() bool { return len(d.reports("cut-other")) == 1 })
	if r := d.reports("cut-other")[0]; !r.Complete || r.Output != 50 {
		t.Errorf("the other bottle's report %+v, want complete with its 50 output tokens", r)
	}
}

// TestCutoffRefusesUntilRestored: once the meter has seen its bottle
// leave active, a new request is refused before the upstream even when
// the gate would let it through (here a gate that always allows, as a
// cached "allowed" does for up to GateCache), with a provider-shaped 429
// that tells the SDK not to retry; once an operator restores the bottle,
// requests pass again.
func TestCutoffRefusesUntilRestored(t *testing.T) {
	d := &daemon{Daemon: daemontest.Start(t, daemontest.Options{Enforcer: finishingEnforcer{}}), t: t}
	tt := cutCases[1]
	d.register("cut-refuse", nil)
	h, _ := ratedStream(tt.head, tt.delta)
	_, srv := meterFor(t, d.Sock, "cut-refuse", newUpstream(t, h).URL, func(c *meter.Config) {
		c.Daemon = allowingGate{c.Daemon}
	})
	resp := postStream(t, srv.URL+tt.path, tt.body)
	readStream(t, resp.Body, func(seen int) {
		if seen == 3 {
			d.cutoff("cut-refuse", "runaway agent")
		}
	})
	// The stream was cut, so the meter knows: the next request is refused.
	resp = postStream(t, srv.URL+tt.path, tt.body)
	b, _ := io.ReadAll(resp.Body)
	msg, kind := errorShape(t, "openai", b)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("X-Should-Retry") != "false" ||
		kind != "insufficient_quota" || !strings.Contains(msg, "bottle cut-refuse is ") || !strings.Contains(msg, "runaway agent") {
		t.Errorf("got %d (x-should-retry %q) %s; want a 429 insufficient_quota naming the state, not to be retried",
			resp.StatusCode, resp.Header.Get("X-Should-Retry"), b)
	}
	if _, err := d.Client.Act(t.Context(), "cut-refuse", api.ActionRequest{Action: "restore", Reason: "raised"}); err != nil {
		t.Fatal(err)
	}
	eventuallyPasses(t, srv.URL+tt.path, tt.body)
}

// allowingGate answers every verdict "allowed, active": the gate of a
// meter whose cached answer is stale.
type allowingGate struct{ meter.Daemon }

func (g allowingGate) Verdict(_ context.Context, q client.VerdictQuery) (budget.Verdict, error) {
	return budget.Verdict{Allowed: true, Bottle: q.Bottle, Agent: q.Agent, Provider: q.Provider, State: budget.Active}, nil
}

// finishingEnforcer finishes every action at once, as an engine with no
// containers to act on would, so that a restore takes a bottle back to
// active (with no enforcer, actions stay pending).
type finishingEnforcer struct{}

func (finishingEnforcer) Submit(job controller.Job) { go job.Finished(1, nil) }

// generating is a fake provider that takes a request and generates until
// its connection is closed, having first sent sent (headers and part of a
// JSON body), or nothing. arrived is closed when the request is in; gone
// when the provider sees its connection closed.
func generating(sent string) (h http.HandlerFunc, arrived, gone <-chan struct{}) {
	in, closed := make(chan struct{}), make(chan struct{})
	return func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if sent != "" {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, sent)
			w.(http.Flusher).Flush()
		}
		close(in)
		<-r.Context().Done()
		close(closed)
	}, in, closed
}

// TestCutBeforeResponseIs429: a whole-JSON request cut while the provider
// is still generating (no header sent yet) gets the provider-shaped 429,
// not to be retried, naming the bottle's state; the provider's connection
// is closed.
func TestCutBeforeResponseIs429(t *testing.T) {
	d := startDaemon(t)
	for i, tt := range familyPaths {
		t.Run(tt.path, func(t *testing.T) {
			bottle := fmt.Sprintf("cut-early-%d", i)
			d.register(bottle, nil)
			h, arrived, gone := generating("")
			_, srv := meterFor(t, d.Sock, bottle, newUpstream(t, h).URL, nil)
			go func() {
				<-arrived
				d.cutoff(bottle, "runaway agent")
			}()
			resp := postStream(t, srv.URL+tt.path, `{"model":"m"}`)
			b, _ := io.ReadAll(resp.Body)
			msg, kind := errorShape(t, tt.family, b)
			want := deniedKind[tt.family]
			if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("X-Should-Retry") != "false" || kind != want ||
				!strings.Contains(msg, "bottle "+bottle+" is pending: cutoff pending: runaway agent") {
				t.Errorf("got %d (x-should-retry %q) %s; want a 429 %s naming the state, not to be retried",
					resp.StatusCode, resp.Header.Get("X-Should-Retry"), b, want)
			}
			waitGone(t, gone)
		})
	}
}

// TestCutAfterHeadersEndsBody: a whole-JSON response whose header and
// first bytes have passed is ended where it is (there is no event to add
// to a JSON body); the client's read ends, the provider's connection is
// closed, and what was seen is reported incomplete.
func TestCutAfterHeadersEndsBody(t *testing.T) {
	d := startDaemon(t)
	d.register("cut-json", nil)
	const partial = `{"id":"msg_json","type":"message","content":[{"type":"text","text":"tok tok`
	h, _, gone := generating(partial)
	_, srv := meterFor(t, d.Sock, "cut-json", newUpstream(t, h).URL, nil)
	resp := postStream(t, srv.URL+"/v1/messages", `{"model":"m"}`)
	b := make([]byte, len(partial))
	if _, err := io.ReadFull(resp.Body, b); err != nil || string(b) != partial {
		t.Fatalf("read %q, %v; want the bytes the upstream sent", b, err)
	}
	d.cutoff("cut-json", "runaway agent")
	if rest, _ := io.ReadAll(resp.Body); len(rest) != 0 {
		t.Errorf("the client got %q after the cut, want the body ended where it was", rest)
	}
	waitGone(t, gone)
	eventually(t, "the cut response is reported", func() bool { return len(d.reports("cut-json")) == 1 })
	if r := d.reports("cut-json")[0]; r.Complete {
		t.Errorf("report %+v, want incomplete", r)
	}
}

// TestStopCutsStreamsInFlight: a meter stopped under a live stream (past
// Stop's grace period) cuts it: the client gets a 503 error event and a
// clean end, the provider's connection is closed, and Stop returns once
// the stream's report, incomplete, is in the ledger.
func TestStopCutsStreamsInFlight(t *testing.T) {
	d := startDaemon(t)
	tt := cutCases[0]
	h, gone := ratedStream(tt.head, tt.delta)
	m := startMeter(t, newUpstream(t, h).URL, meter.Config{Bottle: "cut-stop", Agent: "implementer", Socket: d.Sock})
	stopped := make(chan error, 1)
	resp := postStream(t, "http://"+m.Addr().String()+tt.path, tt.body)
	_, last := readStream(t, resp.Body, func(seen int) {
		if seen == 3 {
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond) // the grace period
				defer cancel()
				stopped <- m.Stop(ctx)
			}()
		}
	})
	if !strings.HasPrefix(last, tt.marker) || !strings.Contains(last, "overloaded_error") || !strings.Contains(last, "shutting down") {
		t.Errorf("last event %q, want an overloaded_error event saying the meter is shutting down", last)
	}
	waitGone(t, gone)
	if err := <-stopped; err != nil {
		t.Fatalf("Stop = %v, want nil", err)
	}
	if rs := d.reports("cut-stop"); len(rs) != 1 || rs[0].Complete || rs[0].Input != 100 {
		t.Errorf("reports %+v, want the stream's, incomplete with its input, by the time Stop returned", rs)
	}
}

// TestOperatorCutoffEndsWebSocketResponse: a Responses WebSocket whose
// response is streaming when the bottle is cut off: the client gets an
// error event for it naming the state, then a 1008 close; the upstream
// socket is closed; the response is reported incomplete.
func TestOperatorCutoffEndsWebSocketResponse(t *testing.T) {
	d := startDaemon(t)
	d.register("cut-ws", nil)
	gone := make(chan struct{})
	up := newUpstream(t, endlessDeltas("resp_ws_cut", "tok ", tokenEvery, gone))
	_, srv := meterFor(t, d.Sock, "cut-ws", up.URL, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	c := createOverSocket(t, ctx, srv.URL)
	seen, last := 0, ""
	for {
		_, msg, err := c.Read(ctx)
		if err != nil {
			if websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
				t.Errorf("the session ended with %v, want a 1008 close", err)
			}
			break
		}
		if strings.Contains(string(msg), "tok ") {
			if seen++; seen == 3 {
				d.cutoff("cut-ws", "runaway agent")
			}
		}
		last = string(msg)
	}
	var ev struct {
		Type   string
		Status int
		Error  struct{ Message string }
	}
	if json.Unmarshal([]byte(last), &ev) != nil || ev.Type != "error" || ev.Status != http.StatusTooManyRequests ||
		!strings.Contains(ev.Error.Message, "bottle cut-ws is pending: cutoff pending: runaway agent") {
		t.Errorf("last message %s, want a 429 error event naming the state", last)
	}
	waitGone(t, gone)
	eventually(t, "the cut response is reported", func() bool { return len(d.reports("cut-ws")) == 1 })
	if r := d.reports("cut-ws")[0]; r.ID != "resp_ws_cut" || r.Complete {
		t.Errorf("report %+v, want resp_ws_cut incomplete", r)
	}
}

// unplugged is a daemon client whose event subscriptions a test can drop
// and refuse, as a daemon restart or a lost connection would.
type unplugged struct {
	meter.Daemon
	mu         sync.Mutex
	down       bool
	streams    []*client.EventStream
	subscribed atomic.Int64
}

func (u *unplugged) BottleEvents(ctx context.Context, slug string) (*client.EventStream, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.down {
		return nil, errors.New("unplugged")
	}
	s, err := u.Daemon.BottleEvents(ctx, slug)
	if err == nil {
		u.streams = append(u.streams, s)
		u.subscribed.Add(1)
	}
	return s, err
}

// unplug ends the subscriptions and refuses new ones until plug.
func (u *unplugged) unplug() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.down = true
	for _, s := range u.streams {
		s.Close()
	}
}

func (u *unplugged) plug() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.down = false
}

// TestWatchCatchesUpAfterReconnecting: while the meter cannot hear its
// bottle's events, a stream in flight runs on through a cutoff; once the
// watch subscribes again it asks where the bottle stands, and cuts the
// stream then.
func TestWatchCatchesUpAfterReconnecting(t *testing.T) {
	d := startDaemon(t)
	tt := cutCases[0]
	d.register("cut-watch", nil)
	h, gone := ratedStream(tt.head, tt.delta)
	u := &unplugged{}
	_, srv := meterFor(t, d.Sock, "cut-watch", newUpstream(t, h).URL, func(c *meter.Config) {
		u.Daemon, c.Daemon = c.Daemon, u
	})
	eventually(t, "the watch subscribes", func() bool { return u.subscribed.Load() == 1 })
	resp := postStream(t, srv.URL+tt.path, tt.body)
	_, last := readStream(t, resp.Body, func(seen int) {
		switch seen {
		case 3:
			u.unplug()
			d.cutoff("cut-watch", "runaway agent")
		case 13: // ten tokens later: the stream ran on while the meter could not hear
			u.plug()
		}
	})
	if !strings.HasPrefix(last, tt.marker) || !strings.Contains(last, "bottle cut-watch is pending: cutoff pending: runaway agent") {
		t.Errorf("last event %q, want the error event naming the state", last)
	}
	if n := u.subscribed.Load(); n != 2 {
		t.Errorf("the watch subscribed %d times, want 2 (once again after the drop)", n)
	}
	waitGone(t, gone)
}

// watchGoroutines counts the goroutines running a meter's watch of its
// bottle or a client's event stream.
func watchGoroutines() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "meter.(*Proxy).watch(") + strings.Count(string(buf), "client.(*Client).events.func")
}

// TestCloseEndsTheWatch: a proxy's watch and its event stream end with
// Close, connected or not: no goroutine is left behind.
func TestCloseEndsTheWatch(t *testing.T) {
	d := startDaemon(t)
	before := watchGoroutines()
	for _, sock := range []string{d.Sock, "/nonexistent/run/bottlecap.sock"} {
		p, err := meter.New(meter.Config{Bottle: "cut-close", Socket: sock})
		if err != nil {
			t.Fatal(err)
		}
		if sock == d.Sock {
			eventually(t, "the watch and its stream run", func() bool { return watchGoroutines() == before+2 })
		}
		if err := p.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		// Close waits for the goroutines to finish; they may still be
		// returning.
		eventually(t, "the watch's goroutines end with Close", func() bool { return watchGoroutines() == before })
	}
}

// TestCutNeverSplitsAnEvent: the upstream has sent half an event when the
// stream is cut. The meter passes events whole, so the client never gets
// the half: its stream is the whole events, then the error event, each
// parsing on its own.
func TestCutNeverSplitsAnEvent(t *testing.T) {
	d := startDaemon(t)
	tt := cutCases[0]
	d.register("cut-half", nil)
	third := tt.delta(2)
	h, _, gone := generating("")
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, strings.Join(tt.head, "")+tt.delta(0)+tt.delta(1)+third[:len(third)/2])
		w.(http.Flusher).Flush()
		h(w, r) // generates until its connection is closed
	})
	_, srv := meterFor(t, d.Sock, "cut-half", up.URL, nil)
	resp := postStream(t, srv.URL+tt.path, tt.body)
	seen, last := readStream(t, resp.Body, func(seen int) {
		if seen == 2 {
			d.cutoff("cut-half", "runaway agent")
		}
	})
	if seen != 2 || !strings.HasPrefix(last, tt.marker) {
		t.Errorf("the client saw %d deltas and last %q; want the 2 whole ones, then the error event on its own", seen, last)
	}
	waitGone(t, gone)
}

// eventuallyPasses waits until a POST of body to url is answered 200: a
// restored bottle's requests pass again (the meter learns of the restore
// from the daemon's events, a moment after the daemon).
func eventuallyPasses(t *testing.T, url, body string) {
	t.Helper()
	eventually(t, "a restored bottle's requests pass again", func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// createOverSocket opens a Responses WebSocket through the meter at url
// and sends one response.create; the session closes when the test ends.
func createOverSocket(t *testing.T, ctx context.Context, url string) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(url, "http")+"/v1/responses", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CloseNow() })
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"type":"response.create","model":"gpt-5"}`)); err != nil {
		t.Fatal(err)
	}
	return c
}
