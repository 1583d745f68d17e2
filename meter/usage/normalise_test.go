package usage_test

import (
	"math"
	"strings"
	"testing"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/meter/usage"
)

// TestNormaliseEdges covers what the recorded fixtures do not: odd but
// possible counts, which must never come out negative.
func TestNormaliseEdges(t *testing.T) {
	const max = math.MaxInt64
	tests := []struct {
		name     string
		format   usage.Format
		body     string
		want     budget.Usage
		complete bool
	}{
		{"chat cached tokens", usage.OpenAIChat, `{"object":"chat.completion","usage":{"prompt_tokens":100,"completion_tokens":20,"prompt_tokens_details":{"cached_tokens":64},"completion_tokens_details":{"reasoning_tokens":8}}}`, budget.Usage{Input: 36, CacheRead: 64, Output: 20, Reasoning: 8}, true},
		{"chat cached above prompt", usage.OpenAIChat, `{"usage":{"prompt_tokens":10,"completion_tokens":1,"prompt_tokens_details":{"cached_tokens":64}}}`, budget.Usage{CacheRead: 64, Output: 1}, true},
		{"chat negative counts", usage.OpenAIChat, `{"usage":{"prompt_tokens":-10,"completion_tokens":-1}}`, budget.Usage{}, true},
		{"chat wrong-typed field skipped", usage.OpenAIChat, `{"model":7,"usage":{"prompt_tokens":"10","completion_tokens":4}}`, budget.Usage{Output: 4}, true},
		{"chat usage on a content chunk is not final", usage.OpenAIChat, `{"object":"chat.completion.chunk","choices":[{"delta":{"content":"a"},"finish_reason":null}],"usage":{"prompt_tokens":3,"completion_tokens":1}}`, budget.Usage{Input: 3, Output: 1}, false},
		{"chat usage on the finishing chunk is final", usage.OpenAIChat, `{"object":"chat.completion.chunk","choices":[{"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2}}`, budget.Usage{Input: 3, Output: 2}, true},
		{"responses failed without usage", usage.OpenAIResponses, `{"type":"response.failed","response":{"id":"r","usage":null}}`, budget.Usage{}, true},
		{"responses incomplete", usage.OpenAIResponses, `{"type":"response.incomplete","response":{"usage":{"input_tokens":5,"output_tokens":2,"input_tokens_details":{"cached_tokens":1}}}}`, budget.Usage{Input: 4, CacheRead: 1, Output: 2}, true},
		{"anthropic delta without start", usage.Anthropic, `{"type":"message_delta","usage":{"output_tokens":12}}`, budget.Usage{Output: 12}, true},
		{"anthropic iterations saturate", usage.Anthropic, `{"type":"message","usage":{"iterations":[{"input_tokens":9223372036854775807},{"input_tokens":5,"cache_creation_input_tokens":2}]}}`, budget.Usage{Input: max, CacheWrite: 2}, true},
		{"gemini tool-use prompt", usage.Gemini, `{"candidates":[{"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":50,"cachedContentTokenCount":20,"toolUsePromptTokenCount":7,"candidatesTokenCount":3}}`, budget.Usage{Input: 37, CacheRead: 20, Output: 3}, true},
		{"gemini blocked prompt", usage.Gemini, `{"promptFeedback":{"blockReason":"SAFETY"},"usageMetadata":{"promptTokenCount":8}}`, budget.Usage{Input: 8}, true},
		{"gemini unfinished chunk", usage.Gemini, `{"candidates":[{"content":{}}],"usageMetadata":{"promptTokenCount":8,"candidatesTokenCount":1}}`, budget.Usage{Input: 8, Output: 1}, false},
		{"gemini huge counts saturate", usage.Gemini, `{"candidates":[{"finishReason":"STOP"}],"usageMetadata":{"candidatesTokenCount":9223372036854775807,"thoughtsTokenCount":9}}`, budget.Usage{Output: max, Reasoning: 9}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := usage.NewParser(tt.format, "")
			p.Write([]byte(tt.body))
			got := p.Result()
			if got.Usage != tt.want || got.Complete != tt.complete {
				t.Fatalf("usage %+v complete %t, want %+v complete %t", got.Usage, got.Complete, tt.want, tt.complete)
			}
		})
	}
}

// TestMalformedNeverPanics throws broken input at every format; the parser
// must swallow it and report nothing negative.
func TestMalformedNeverPanics(t *testing.T) {
	inputs := []string{
		"", "\x00\xff\xfe", "{", "}", "[", "]]]]", "[[[[[[[[", "{{{{{{", `{"usage":`, `{"usage":{"prompt_tokens":`,
		"data:", "data: {\n\n", "data: [DONE]", "event:\n\n", ":\r\r\r\n\n", "\r", "\n\n\n",
		`{"usage":"x"}`, `{"usage":[1,2]}`, `{"usage":{"iterations":{}}}`, `{"usageMetadata":[]}`, `{"candidates":{"a":1}}`,
		`{"type":"message_start","message":"x"}`, `{"type":"response.completed","response":[]}`,
		`{"choices":"x","usage":{"prompt_tokens":1e400}}`, `{"usage":{"prompt_tokens":1.5}}`,
		strings.Repeat(`{"a":"\\`, 1000), strings.Repeat("data: x\n", 1000), `"\"\\\"` + strings.Repeat("}", 50),
	}
	formats := []usage.Format{usage.Auto, usage.OpenAIChat, usage.OpenAIResponses, usage.Anthropic, usage.Gemini}
	for _, f := range formats {
		for _, in := range inputs {
			for _, max := range []int{1, 3, len(in) + 1} {
				got := feed(f, "", []byte(in), 1, max).Result()
				if err := got.Usage.Validate(); err != nil {
					t.Fatalf("%s %q: %v", f, in, err)
				}
			}
		}
	}
}
