package meter_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	aoption "github.com/anthropics/anthropic-sdk-go/option"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/meter"
)

// countedMeter serves p behind a counter of the HTTP requests that reach
// the meter.
func countedMeter(t *testing.T, p *meter.Proxy) (*atomic.Int64, string) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		p.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return &n, srv.URL
}

// sdkCalls are the official SDK calls an agent makes, each returning the
// SDK's error and the text that error shows (Error() for Anthropic, whose
// Error() includes the body; the Message field for openai-go, whose
// Error() is only "OpenAI API error: 429 Too Many Requests").
var sdkCalls = []struct {
	name, provider string
	call           func(ctx context.Context, base string) (status int, shown string, err error)
}{
	{"anthropic messages", "claude", func(ctx context.Context, base string) (int, string, error) {
		c := anthropic.NewClient(aoption.WithBaseURL(base), aoption.WithAPIKey("sk-ant-test"))
		_, err := c.Messages.New(ctx, anthropic.MessageNewParams{
			Model: "claude-haiku-4-5", MaxTokens: 8192, // above the output slice: admitted with the whole slice
			Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))},
		})
		var e *anthropic.Error
		if !errors.As(err, &e) {
			return 0, "", err
		}
		return e.StatusCode, e.Error(), err
	}},
	{"openai chat", "codex", func(ctx context.Context, base string) (int, string, error) {
		c := openai.NewClient(option.WithBaseURL(base+"/v1/"), option.WithAPIKey("sk-test"))
		_, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model: "gpt-5", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
		})
		return openaiShown(err)
	}},
	{"openai responses", "codex", func(ctx context.Context, base string) (int, string, error) {
		c := openai.NewClient(option.WithBaseURL(base+"/v1/"), option.WithAPIKey("sk-test"))
		_, err := c.Responses.New(ctx, responses.ResponseNewParams{
			Model: "gpt-5", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")},
		})
		return openaiShown(err)
	}},
	// Codex signed in with ChatGPT: the Responses call under its ChatGPT
	// base URL (chatgpt.com/backend-api/codex, here the meter's).
	{"chatgpt codex responses", "codex", func(ctx context.Context, base string) (int, string, error) {
		_, err := chatgptClient(base).Responses.New(ctx, responses.ResponseNewParams{
			Model: "gpt-5", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")},
		})
		return openaiShown(err)
	}},
	// Remote compaction, under each of Codex's base URLs.
	{"openai responses compact", "codex", func(ctx context.Context, base string) (int, string, error) {
		c := openai.NewClient(option.WithBaseURL(base+"/v1/"), option.WithAPIKey("sk-test"))
		_, err := c.Responses.Compact(ctx, compactParams())
		return openaiShown(err)
	}},
	{"chatgpt codex responses compact", "codex", func(ctx context.Context, base string) (int, string, error) {
		_, err := chatgptClient(base).Responses.Compact(ctx, compactParams())
		return openaiShown(err)
	}},
	{"openai legacy completions", "codex", func(ctx context.Context, base string) (int, string, error) {
		c := openai.NewClient(option.WithBaseURL(base+"/v1/"), option.WithAPIKey("sk-test"))
		_, err := c.Completions.New(ctx, openai.CompletionNewParams{Model: openai.CompletionNewParamsModelGPT3_5TurboInstruct,
			Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("hi")}})
		return openaiShown(err)
	}},
}

func openaiShown(err error) (int, string, error) {
	var e *openai.Error
	if !errors.As(err, &e) {
		return 0, "", err
	}
	return e.StatusCode, e.Message, err
}

// TestSDKDeniedCallIsOneRequest: with the budget spent, each official SDK
// (default retry policy: two retries on 429/5xx) makes exactly one HTTP
// request, the upstream sees none, and the error the SDK hands the agent
// names the budget: scope, id, provider, limit and used.
func TestSDKDeniedCallIsOneRequest(t *testing.T) {
	d := startDaemon(t)
	for i, tt := range sdkCalls {
		t.Run(tt.name, func(t *testing.T) {
			bottle := "sdk-denied-" + string(rune('a'+i))
			d.register(bottle, budget.Limits{tt.provider: budget.Lifetime(10)})
			spend := api.Report{Report: budget.Report{ID: bottle + "-spend", Bottle: bottle, Agent: "implementer", Provider: tt.provider, Usage: budget.Usage{Input: 25}}}
			if _, err := d.Client.Ingest(t.Context(), []api.Report{spend}); err != nil {
				t.Fatal(err)
			}
			calls, up := countingUpstream(t)
			p, _ := meterFor(t, d.Sock, bottle, up, nil)
			requests, base := countedMeter(t, p)
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			status, shown, err := tt.call(ctx, base)
			if status != http.StatusTooManyRequests {
				t.Fatalf("SDK error %v, want a 429 API error", err)
			}
			for _, part := range []string{"scope=bottle", "id=" + bottle, "provider=" + tt.provider, "limit=10", "used=25"} {
				if !strings.Contains(shown, part) {
					t.Errorf("the SDK shows %q, which does not name the budget (%s)", shown, part)
				}
			}
			refusedOnce(t, requests.Load(), atomic.LoadInt64(calls))
		})
	}
}

// TestSDKFailClosedIsOneRequest: the fail-closed 503 (daemon unreachable)
// is not retried by the SDKs either.
func TestSDKFailClosedIsOneRequest(t *testing.T) {
	for _, tt := range sdkCalls {
		t.Run(tt.name, func(t *testing.T) {
			calls, up := countingUpstream(t)
			p, _ := meterFor(t, "/nonexistent/run/bottlecap.sock", "sdk-closed", up, nil)
			requests, base := countedMeter(t, p)
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			status, shown, err := tt.call(ctx, base)
			if status != http.StatusServiceUnavailable || !strings.Contains(shown, "cannot be reached") {
				t.Fatalf("SDK error %v (shows %q), want a 503 saying the daemon cannot be reached", err, shown)
			}
			refusedOnce(t, requests.Load(), atomic.LoadInt64(calls))
		})
	}
}

// TestSDKEstimateRefusedIsOneRequest: with a budget that is not spent but
// cannot cover a request's estimate plus an output slice, each official
// SDK makes exactly one HTTP request, the upstream sees none, and the
// error names the budget, what allowances hold and the estimate.
func TestSDKEstimateRefusedIsOneRequest(t *testing.T) {
	d := startDaemon(t)
	for i, tt := range sdkCalls {
		t.Run(tt.name, func(t *testing.T) {
			bottle := "sdk-estimate-" + string(rune('a'+i))
			d.register(bottle, budget.Limits{tt.provider: budget.Lifetime(3000)})
			calls, up := countingUpstream(t)
			p, _ := meterFor(t, d.Sock, bottle, up, nil)
			requests, base := countedMeter(t, p)
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			status, shown, err := tt.call(ctx, base)
			if status != http.StatusTooManyRequests {
				t.Fatalf("SDK error %v, want a 429 API error", err)
			}
			for _, part := range []string{"scope=bottle", "id=" + bottle, "limit=3000", "used=0", "held=", "estimate=", "output slice"} {
				if !strings.Contains(shown, part) {
					t.Errorf("the SDK shows %q, which does not name %s", shown, part)
				}
			}
			refusedOnce(t, requests.Load(), atomic.LoadInt64(calls))
		})
	}
}

// TestSDKStreamCutByBudgetIsAnError: a stream that runs on after its
// budget can pay no more is cut by the meter, and the official SDK ends
// it with an error naming the budget, not a hang and not a clean end;
// the provider sees its connection closed.
func TestSDKStreamCutByBudgetIsAnError(t *testing.T) {
	d := startDaemon(t)
	for i, tt := range sdkStreams {
		t.Run(tt.name, func(t *testing.T) {
			bottle := fmt.Sprintf("sdk-spent-%d", i)
			d.register(bottle, budget.Limits{tt.cut.provider: budget.Lifetime(4600)})
			seen, gone, err := tt.throughMeter(t, d, bottle, nil)
			if err == nil || seen == 0 {
				t.Fatalf("the SDK's stream ended after %d deltas with %v; want deltas, then an error", seen, err)
			}
			for _, part := range []string{"scope=bottle", "id=" + bottle, "limit=4600", "output slice"} {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("the SDK's error %q does not name %s", err, part)
				}
			}
			waitGone(t, gone)
			eventually(t, "the cut stream is reported", func() bool { return len(d.reports(bottle)) == 1 })
			if r := d.reports(bottle)[0]; r.Complete || r.Usage.Total() > 4600+4096 {
				t.Errorf("report %+v, want incomplete and within the limit plus a slice", r)
			}
		})
	}
}

// refusedOnce checks that a refused SDK call was one request to the meter
// (the SDK did not retry it) and none to the upstream.
func refusedOnce(t *testing.T, requests, upstreamCalls int64) {
	t.Helper()
	if requests != 1 {
		t.Errorf("the SDK sent %d requests for one refused call, want 1", requests)
	}
	if upstreamCalls != 0 {
		t.Errorf("%d refused requests reached the upstream", upstreamCalls)
	}
}
