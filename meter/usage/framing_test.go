package usage_test

import (
	"strings"
	"testing"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/meter/usage"
)

const (
	chatUsage = `{"id":"c1","object":"chat.completion.chunk","model":"m","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":5,"prompt_tokens_details":{"cached_tokens":4}}}`
	chatBody  = `{"id":"c1","object":"chat.completion","model":"m","choices":[{"message":{"content":"x"},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":5,"prompt_tokens_details":{"cached_tokens":4}}}`
)

var chatWant = budget.Usage{Input: 6, CacheRead: 4, Output: 5}

// TestFraming checks the framings a proxy meets, each fed whole and one
// byte at a time.
func TestFraming(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		want     budget.Usage
		complete bool
	}{
		{"sse lf", "data: " + chatUsage + "\n\ndata: [DONE]\n\n", chatWant, true},
		{"sse crlf", "data: " + chatUsage + "\r\n\r\ndata: [DONE]\r\n\r\n", chatWant, true},
		{"sse cr", "data: " + chatUsage + "\r\rdata: [DONE]\r\r", chatWant, true},
		{"sse data without space", "data:" + chatUsage + "\n\n", chatWant, true},
		{"sse multi-line data lf", "data: {\"object\":\"chat.completion.chunk\",\"choices\":[],\ndata: \"usage\":{\"prompt_tokens\":10,\ndata: \"completion_tokens\":5}}\n\n", budget.Usage{Input: 10, Output: 5}, true},
		{"sse multi-line data crlf", "data: {\"object\":\"chat.completion.chunk\",\"choices\":[],\r\ndata: \"usage\":{\"prompt_tokens\":10,\r\ndata: \"completion_tokens\":5}}\r\n\r\n", budget.Usage{Input: 10, Output: 5}, true},
		{"sse comments keep-alives and fields", ": keep-alive\n\n:\n\nevent: chunk\nid: 7\nretry: 100\n: note\ndata: " + chatUsage + "\n\n", chatWant, true},
		{"sse event name gives the type", "event: message_delta\ndata: {\"usage\":{\"input_tokens\":3,\"output_tokens\":9}}\n\n", budget.Usage{Input: 3, Output: 9}, true},
		{"sse leading blank lines", "\r\n\r\n\ndata: " + chatUsage + "\n\n", chatWant, true},
		{"sse last event without blank line", "data: " + chatUsage + "\n", chatWant, true},
		{"sse last line without newline", "data: " + chatUsage, chatWant, true},
		{"sse usage null does not erase", "data: " + chatUsage + "\n\ndata: {\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":null}\n\n", chatWant, true},
		{"json body", chatBody, chatWant, true},
		{"json body after bom and whitespace", "\xef\xbb\xbf \r\n" + chatBody + "\n", chatWant, true},
		{"json body pretty crlf", strings.ReplaceAll(strings.ReplaceAll(chatBody, ",", ",\r\n  "), "{", "{\r\n  "), chatWant, true},
		{"json strings with braces quotes and escapes", `{"object":"chat.completion","x":"}\"{\\","y":"\\\"}}","usage":{"prompt_tokens":10,"completion_tokens":5,"prompt_tokens_details":{"cached_tokens":4}},"z":"\u007d{"}`, chatWant, true},
		{"json lines", chatUsage + "\n" + chatUsage + "\n", chatWant, true},
		{"json lines resync after a cut line", `{"object":"chat.completion.chunk","choices":[{"delta":{"content":"ab` + "\n" + chatUsage + "\n", chatWant, true},
		{"json array", "[" + chatUsage + ",\r\n" + chatUsage + "]", chatWant, true},
		{"json array with a string holding a brace", `["{", ` + chatBody + "]", chatWant, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, max := range []int{len(tt.body) + 1, 1, 2, 5} {
				got := feed(usage.Auto, "", []byte(tt.body), 7, max).Result()
				if got.Usage != tt.want || got.Complete != tt.complete || !got.Found {
					t.Errorf("chunks up to %d: usage %+v complete %t found %t, want %+v complete %t found true",
						max, got.Usage, got.Complete, got.Found, tt.want, tt.complete)
				}
			}
		})
	}
}

// TestResultIsRepeatable checks that counting a pending event in Result
// does not consume it: the event is counted once, and bytes may follow.
func TestResultIsRepeatable(t *testing.T) {
	p := usage.NewParser(usage.Anthropic, "")
	p.Write([]byte(`data: {"type":"message_start","message":{"id":"m1","usage":{"input_tokens":5,"output_tokens":1}}}` + "\n"))
	first, second := p.Result(), p.Result()
	if first != second || first.Usage.Input != 5 || first.Complete {
		t.Fatalf("results %+v then %+v, want the same with input 5, incomplete", first, second)
	}
	p.Write([]byte("\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":8}}\n\n"))
	got := p.Result()
	if want := (budget.Usage{Input: 5, Output: 8}); got.Usage != want || !got.Complete || got.ID != "m1" {
		t.Fatalf("got %+v, want usage %+v, complete, id m1", got, want)
	}
}
