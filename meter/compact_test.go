package meter_test

import (
	"bytes"
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
)

// compactUpstream is a fake provider answering a compaction (POST
// …/responses/compact) with body, recording the paths and bodies that
// reach it.
type compactUpstream struct {
	body []byte

	mu     sync.Mutex
	paths  []string
	models []string
}

func (c *compactUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req struct{ Model string }
	json.NewDecoder(r.Body).Decode(&req)
	c.mu.Lock()
	c.paths = append(c.paths, r.Method+" "+r.URL.Path)
	c.models = append(c.models, req.Model)
	c.mu.Unlock()
	if !strings.HasSuffix(r.URL.Path, "/responses/compact") {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(c.body)
}

func (c *compactUpstream) seen() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.paths...)
}

// compactClients are the two ways Codex compacts remotely: with an API
// key against the OpenAI API, and signed in with ChatGPT against its
// Codex backend (the SDK's Responses.Compact under each base URL).
var compactClients = []struct {
	family, path string
	client       func(base string) *openai.Client
}{
	{"openai", "/v1/responses/compact", func(base string) *openai.Client {
		c := openai.NewClient(option.WithBaseURL(base+"/v1/"), option.WithAPIKey("sk-test"))
		return &c
	}},
	{"chatgpt", "/backend-api/codex/responses/compact", chatgptClient},
}

// compactParams is a compaction of a short conversation, as Codex sends it.
func compactParams() responses.ResponseCompactParams {
	return responses.ResponseCompactParams{
		Model:        "gpt-5.1-codex-max",
		Instructions: openai.String("You are Codex."),
		Input:        responses.ResponseCompactParamsInputUnion{OfString: openai.String("Create a simple landing page for a dog petting cafe.")},
	}
}

// TestCompactionMeteredAsGeneration: remote compaction through the meter
// (the official SDK's Compact, under the OpenAI API's base URL and under
// ChatGPT's Codex backend) reaches its own upstream once, hands the SDK
// the compaction whole, and is reported once under codex with the
// compaction's usage (the API reference's example), complete, under the
// request's model since a compaction names none.
func TestCompactionMeteredAsGeneration(t *testing.T) {
	d := startDaemon(t)
	const file = "openai-responses-compact.json"
	want := fixtures(t)[file]
	for _, tt := range compactClients {
		t.Run(tt.family, func(t *testing.T) {
			bottle := "compact-" + tt.family
			id := "resp_cmp_" + tt.family
			d.register(bottle, budget.Limits{"codex": budget.Lifetime(1_000_000)})
			up := &compactUpstream{body: bytes.Replace(readFixture(t, file), []byte(`"resp_001"`), []byte(`"`+id+`"`), 1)}
			other := &compactUpstream{}
			var p interface{ Pending() int }
			var base string
			if tt.family == "chatgpt" {
				p, base = meterForChatGPT(t, d.Sock, bottle, newUpstream(t, up.ServeHTTP).URL, newUpstream(t, other.ServeHTTP).URL)
			} else {
				mp, srv := meterFor(t, d.Sock, bottle, newUpstream(t, up.ServeHTTP).URL, nil)
				p, base = mp, srv.URL
			}
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			got, err := tt.client(base).Responses.Compact(ctx, compactParams())
			if err != nil {
				t.Fatalf("Compact through the meter: %v", err)
			}
			if got.ID != id || got.Usage.TotalTokens != want.Total() || got.Usage.OutputTokensDetails.ReasoningTokens != want.Reasoning || len(got.Output) != 2 {
				t.Errorf("the SDK read %s (usage %+v), want the upstream's compaction", got.ID, got.Usage)
			}
			if paths := up.seen(); len(paths) != 1 || paths[0] != "POST "+tt.path {
				t.Errorf("the upstream saw %v, want one POST %s", paths, tt.path)
			}
			if paths := other.seen(); len(paths) != 0 {
				t.Errorf("the other upstream saw %v", paths)
			}
			eventually(t, "the compaction is reported", func() bool { return len(d.reports(bottle)) == 1 && p.Pending() == 0 })
			r := d.reports(bottle)[0]
			if r.ID != id || r.Usage != want.Usage || !r.Complete || r.Provider != "codex" || r.Model != "gpt-5.1-codex-max" {
				t.Errorf("report %+v, want %s complete under codex, model gpt-5.1-codex-max, with usage %+v", r, id, want.Usage)
			}
		})
	}
}

// TestCompactionDeniedInTheRowsShape: with the codex budget spent, a
// compaction is refused before the upstream, in each row's own shape: the
// API's insufficient_quota, the ChatGPT backend's usage_limit_reached
// (which Codex shows as a usage limit, and does not retry).
func TestCompactionDeniedInTheRowsShape(t *testing.T) {
	d := startDaemon(t)
	for _, tt := range compactClients {
		t.Run(tt.family, func(t *testing.T) {
			bottle := "compact-denied-" + tt.family
			d.register(bottle, budget.Limits{"codex": budget.Lifetime(10)})
			spend := api.Report{Report: budget.Report{ID: bottle + "-spend", Bottle: bottle, Agent: "implementer", Provider: "codex", Usage: budget.Usage{Input: 25}}}
			if _, err := d.Client.Ingest(t.Context(), []api.Report{spend}); err != nil {
				t.Fatal(err)
			}
			calls, up := countingUpstream(t)
			p, _ := meterFor(t, d.Sock, bottle, up, nil)
			requests, base := countedMeter(t, p)
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			_, err := tt.client(base).Responses.Compact(ctx, compactParams())
			var e *openai.Error
			if !errors.As(err, &e) || e.StatusCode != http.StatusTooManyRequests || e.Type != deniedKind[tt.family] {
				t.Fatalf("SDK error %v, want a 429 of type %s", err, deniedKind[tt.family])
			}
			for _, part := range []string{"scope=bottle", "id=" + bottle, "provider=codex", "limit=10", "used=25"} {
				if !strings.Contains(e.Message, part) {
					t.Errorf("the SDK shows %q, which does not name the budget (%s)", e.Message, part)
				}
			}
			refusedOnce(t, requests.Load(), atomic.LoadInt64(calls))
		})
	}
}

// legacyCompletion is the legacy Completions API's answer as its reference
// shows it: Chat's usage shape under "text_completion".
const legacyCompletion = `{"id":"cmpl-uqkvlQyYK7bGYrRHQ0eXlWi7","object":"text_completion","created":1589478378,` +
	`"model":"gpt-3.5-turbo-instruct","system_fingerprint":"fp_44709d6fcb","choices":[{"text":"\n\nThis is indeed a test",` +
	`"index":0,"logprobs":null,"finish_reason":"length"}],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}`

// TestLegacyCompletionsMetered: the legacy Completions API is metered as
// Chat: a whole answer is reported with its counts; a stream goes upstream
// asking for its usage (include_usage added) and is reported with the
// usage chunk's counts.
func TestLegacyCompletionsMetered(t *testing.T) {
	d := startDaemon(t)
	d.register("legacy-1", budget.Limits{"codex": budget.Lifetime(1_000_000)})
	var askedUsage atomic.Bool
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Stream        bool
			StreamOptions struct {
				IncludeUsage bool `json:"include_usage"`
			} `json:"stream_options"`
		}
		b, _ := io.ReadAll(r.Body)
		json.Unmarshal(b, &req)
		if r.URL.Path != "/v1/completions" {
			http.NotFound(w, r)
			return
		}
		if !req.Stream {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, legacyCompletion)
			return
		}
		askedUsage.Store(req.StreamOptions.IncludeUsage)
		w.Header().Set("Content-Type", "text/event-stream")
		for _, ev := range []string{
			`{"id":"cmpl-stream-1","object":"text_completion","created":1,"model":"gpt-3.5-turbo-instruct","choices":[{"text":"This","index":0,"logprobs":null,"finish_reason":null}],"usage":null}`,
			`{"id":"cmpl-stream-1","object":"text_completion","created":1,"model":"gpt-3.5-turbo-instruct","choices":[{"text":" is a test","index":0,"logprobs":null,"finish_reason":"stop"}],"usage":null}`,
			`{"id":"cmpl-stream-1","object":"text_completion","created":1,"model":"gpt-3.5-turbo-instruct","choices":[],"usage":{"prompt_tokens":6,"completion_tokens":4,"total_tokens":10}}`,
			`[DONE]`,
		} {
			io.WriteString(w, "data: "+ev+"\n\n")
			w.(http.Flusher).Flush()
		}
	})
	p, srv := meterFor(t, d.Sock, "legacy-1", up.URL, nil)
	c := openai.NewClient(option.WithBaseURL(srv.URL+"/v1/"), option.WithAPIKey("sk-test"))
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	params := openai.CompletionNewParams{Model: openai.CompletionNewParamsModelGPT3_5TurboInstruct,
		Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("Say this is a test")}}
	whole, err := c.Completions.New(ctx, params)
	if err != nil || whole.Usage.TotalTokens != 12 {
		t.Fatalf("Completions.New through the meter: %v, %+v", err, whole)
	}
	s := c.Completions.NewStreaming(ctx, params)
	var text string
	for s.Next() {
		for _, ch := range s.Current().Choices {
			text += ch.Text
		}
	}
	if err := s.Err(); err != nil || text != "This is a test" {
		t.Fatalf("the stream ended with %v after %q", err, text)
	}
	if !askedUsage.Load() {
		t.Error("the streamed request reached the upstream without stream_options.include_usage")
	}
	eventually(t, "both completions are reported", func() bool { return len(d.reports("legacy-1")) == 2 && p.Pending() == 0 })
	want := map[string]budget.Usage{
		"cmpl-uqkvlQyYK7bGYrRHQ0eXlWi7": {Input: 5, Output: 7},
		"cmpl-stream-1":                 {Input: 6, Output: 4},
	}
	for _, r := range d.reports("legacy-1") {
		if u, ok := want[r.ID]; !ok || r.Usage != u || !r.Complete || r.Provider != "codex" || r.Model != "gpt-3.5-turbo-instruct" {
			t.Errorf("report %+v, want one of %v, complete, under codex", r, want)
		}
	}
}
