package usage_test

import (
	"bytes"
	"testing"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/meter/usage"
)

// TestTruncated cuts real streams short: what was seen is reported, never
// marked complete.
func TestTruncated(t *testing.T) {
	tests := []struct {
		file  string
		cut   string // the body is cut this many bytes into the first occurrence of cut
		into  int
		want  budget.Usage
		found bool
	}{
		{"anthropic-messages-stream-tooluse.sse", "event: message_delta", 0, budget.Usage{Input: 656, Output: 26}, true},
		{"anthropic-messages-stream-tooluse.sse", `"type":"message_delta"`, 40, budget.Usage{Input: 656, Output: 26}, true},
		{"anthropic-messages-stream-compaction-cache.sse", "event: message_delta", 0, budget.Usage{Input: 100, CacheRead: 55096, Output: 7}, true},
		{"anthropic-messages-stream-prompt-cache.chunks.jsonl", `{"type":"message_delta"`, 60, budget.Usage{Input: 2, CacheWrite: 3068, Output: 69}, true},
		{"gemini-streamgeneratecontent.sse", `"text": "4\n15`, 0, budget.Usage{Input: 18, Output: 66, Reasoning: 35}, true},
		{"gemini-streamgeneratecontent-thinking.chunks.jsonl", `{"candidates":[{"content":{"parts":[{"text":"","thoughtSignature"`, 0, budget.Usage{Input: 9, Output: 285, Reasoning: 256}, true},
		{"openai-responses-stream-reasoning.sse", "event: response.completed", 0, budget.Usage{}, false},
		{"openai-responses-stream-phase.chunks.jsonl", `{"type":"response.completed"`, 100, budget.Usage{}, false},
		{"openai-chat-stream-include-usage.sse", `"usage":{`, 0, budget.Usage{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.file+"/"+tt.cut, func(t *testing.T) {
			body := fixture{File: tt.file}.body(t)
			i := bytes.Index(body, []byte(tt.cut))
			if i < 0 {
				t.Fatalf("%q not in %s", tt.cut, tt.file)
			}
			for _, seed := range seeds {
				got := feed(usage.Auto, "", body[:i+tt.into], seed, 64).Result()
				if got.Usage != tt.want || got.Found != tt.found || got.Complete {
					t.Fatalf("seed %d: usage %+v found %t complete %t, want %+v found %t complete false",
						seed, got.Usage, got.Found, got.Complete, tt.want, tt.found)
				}
			}
		})
	}
}

// TestEveryPrefix feeds every prefix of every stream fixture: no prefix may
// claim completeness with other than the final counts, and no usage may
// appear without Found.
func TestEveryPrefix(t *testing.T) {
	for _, fx := range fixtures(t) {
		if !fx.isSSE() && !fx.isLines() {
			continue
		}
		t.Run(fx.File, func(t *testing.T) {
			body := fx.body(t)
			stride := 1 + len(body)/1500
			for n := 0; n <= len(body); n += stride {
				got := feed(usage.Auto, fx.path(), body[:n], int64(n), 200).Result()
				if got.Complete && got.Usage != fx.usage() {
					t.Fatalf("prefix %d: complete with %+v, want %+v", n, got.Usage, fx.usage())
				}
				if !got.Found && got.Usage != (budget.Usage{}) {
					t.Fatalf("prefix %d: usage %+v without found", n, got.Usage)
				}
			}
		})
	}
}

// TestChatUsageBeforeDone: the usage chunk is final even if [DONE] is lost.
func TestChatUsageBeforeDone(t *testing.T) {
	body := fixture{File: "openai-chat-stream-toolcall-2026.sse"}.body(t)
	i := bytes.Index(body, []byte("data: [DONE]"))
	got := feed(usage.Auto, "", body[:i], 1, 50).Result()
	if want := (budget.Usage{Input: 53, Output: 15}); got.Usage != want || !got.Complete {
		t.Fatalf("usage %+v complete %t, want %+v complete true", got.Usage, got.Complete, want)
	}
}
