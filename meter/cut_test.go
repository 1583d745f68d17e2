package meter_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
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
		body: `{"model":"claude-haiku-4-5","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]}`,
		head: []string{
			"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_cut\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-haiku-4-5\",\"content\":[],\"stop_reason\":null,\"usage\":{\"input_tokens\":100,\"output_tokens\":1}}}\n\n",
			"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
		},
		delta: func(int) string {
			return "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"tok \"}}\n\n"
		},
		marker: "event: error\ndata: {",
		// message_start's counts: the input, and the placeholder output.
		floor: func(int) budget.Usage { return budget.Usage{Input: 100, Output: 1} },
	},
	{
		name: "openai chat", path: "/v1/chat/completions", provider: "codex",
		body: `{"model":"gpt-5","stream":true,"messages":[{"role":"user","content":"hi"}]}`,
		delta: func(int) string {
			return `data: {"id":"chatcmpl-cut","object":"chat.completion.chunk","created":1,"model":"gpt-5","choices":[{"index":0,"delta":{"content":"tok "},"finish_reason":null}]}` + "\n\n"
		},
		marker: `data: {"error":{`,
		// Chat sends its counts only at the end. The floor counted from
		// the deltas that passed is meter/estimate's (not on main yet).
		floor: func(int) budget.Usage { return budget.Usage{} },
	},
	{
		name: "openai responses", path: "/v1/responses", provider: "codex",
		body: `{"model":"gpt-5","stream":true,"input":"hi"}`,
		head: []string{
			"event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_cut\",\"object\":\"response\",\"status\":\"in_progress\",\"model\":\"gpt-5\",\"output\":[],\"usage\":null}}\n\n",
		},
		delta: func(i int) string {
			return fmt.Sprintf("event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":%d,\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"delta\":\"tok \"}\n\n", i+1)
		},
		marker: "event: response.failed\ndata: {",
		// As for Chat: the counts come with response.completed.
		floor: func(int) budget.Usage { return budget.Usage{} },
	},
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
			resp := post(t, srv.URL+tt.path, tt.body)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d, want the upstream's 200", resp.StatusCode)
			}
			events := sseReader{bufio.NewReader(resp.Body)}
			seen, last := 0, ""
			for {
				ev, err := events.next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("the stream broke instead of ending cleanly: %v (after %q)", err, last)
				}
				if strings.Contains(ev, "tok ") {
					if seen++; seen == 3 {
						d.cutoff(bottle, "runaway agent")
					}
				}
				last = ev
			}
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
