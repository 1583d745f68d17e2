package estimate_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/meter/estimate"
	"github.com/bot-bottle/bottlecap/meter/usage"
)

// TestFloor: the rule for a response that ended early, case by case.
func TestFloor(t *testing.T) {
	in := estimate.Estimate{Model: "m", Tokens: 20_000}
	provider := budget.Usage{Input: 3, CacheRead: 19_000, CacheWrite: 500, Output: 1}
	tests := []struct {
		name string
		res  usage.Result
		out  int64
		want budget.Usage
	}{
		{"complete: the provider's counts, whatever passed",
			usage.Result{Usage: budget.Usage{Input: 10, Output: 5, Reasoning: 2}, Complete: true, HasInput: true, HasOutput: true}, 900,
			budget.Usage{Input: 10, Output: 5, Reasoning: 2}},
		{"nothing arrived (a Chat stream abandoned before its usage chunk)",
			usage.Result{}, 300,
			budget.Usage{Input: 20_000, Output: 300}},
		{"input arrived, output is a placeholder (Anthropic after message_start)",
			usage.Result{Usage: provider, Found: true, HasInput: true}, 300,
			budget.Usage{Input: 3, CacheRead: 19_000, CacheWrite: 500, Output: 300}},
		{"the provider's count so far is above the deltas' (Gemini)",
			usage.Result{Usage: budget.Usage{Input: 18, Output: 80, Reasoning: 35}, Found: true, HasInput: true, HasOutput: true}, 30,
			budget.Usage{Input: 18, Output: 80, Reasoning: 35}},
		{"no deltas: the placeholder stays",
			usage.Result{Usage: provider, Found: true, HasInput: true}, 0,
			provider},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := estimate.Floor(tt.res, in, tt.out); got != tt.want {
				t.Errorf("Floor = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestAbandonedStreams: recorded streams cut just before the provider's
// final usage event, as when the client leaves. What the parser alone
// reported (0 output for Chat, the placeholder for Anthropic) is now
// floored by the output estimated from the deltas that passed: for streams
// whose output is all visible, at or above what the provider billed.
func TestAbandonedStreams(t *testing.T) {
	request := []byte(`{"model":"m","messages":[{"role":"user","content":"What is the weather in San Francisco? Answer in JSON."}]}`)
	tests := []struct {
		file, cut string
		format    usage.Format
		visible   bool // all billed output shows in the deltas
	}{
		{"openai-chat-stream-include-usage.sse", `data: {"id":"chatcmpl-ABfw1e5abtU8OwGr15vOreYVb2MiF","object":"chat.completion.chunk","created":1727346169,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_5050236cbd","choices":[],"usage"`, usage.OpenAIChat, true},
		{"openai-chat-stream-toolcall-2026.sse", `"choices":[],"usage":{`, usage.OpenAIChat, false},
		{"anthropic-messages-stream-compaction-cache.sse", "event: message_delta", usage.Anthropic, true},
		{"openai-responses-stream-reasoning.sse", "event: response.completed", usage.OpenAIResponses, false},
		{"gemini-streamgeneratecontent.sse", `"finishReason": "STOP"`, usage.Gemini, false},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join("..", "usage", "testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			whole := usage.NewParser(tt.format, "")
			whole.Write(body)
			billed := whole.Result().Usage

			p := usage.NewParser(tt.format, "")
			p.Write(cutBefore(t, body, tt.cut))
			res := p.Result()
			if res.Complete {
				t.Fatalf("the cut stream is complete: %+v", res)
			}
			e := estimate.New()
			in := e.Input("p", tt.format, request)
			out := e.Output("p", res.Model, res.DeltaBytes)
			got := estimate.Floor(res, in, out)
			t.Logf("%d delta bytes passed: the parser alone said %d output tokens, the floor says %d; the provider billed %d",
				res.DeltaBytes, res.Usage.Output, got.Output, billed.Output)

			if out <= 0 || got.Output < max(out, res.Usage.Output) {
				t.Errorf("floor output %d, want at least the deltas' %d > 0 and the parser's %d", got.Output, out, res.Usage.Output)
			}
			if !res.HasOutput && got.Output <= res.Usage.Output {
				t.Errorf("floor output %d, want above the parser's placeholder %d", got.Output, res.Usage.Output)
			}
			if tt.visible && got.Output < billed.Output {
				t.Errorf("floor output %d, want at least the %d the provider billed", got.Output, billed.Output)
			}
			if res.HasInput {
				if got.Input != res.Usage.Input || got.CacheRead != res.Usage.CacheRead {
					t.Errorf("floor input %+v, want the provider's %+v", got, res.Usage)
				}
			} else if got.Input != in.Tokens {
				t.Errorf("floor input %d, want the estimate %d", got.Input, in.Tokens)
			}
		})
	}
}

// cutBefore is body up to the start of the line holding marker.
func cutBefore(t *testing.T, body []byte, marker string) []byte {
	t.Helper()
	i := bytes.Index(body, []byte(marker))
	if i < 0 {
		t.Fatalf("marker %q not in the fixture", marker)
	}
	return body[:bytes.LastIndexByte(body[:i], '\n')+1]
}
