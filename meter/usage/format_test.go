package usage_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/meter/usage"
)

func TestParseFormat(t *testing.T) {
	tests := []struct {
		in   string
		want usage.Format
	}{
		{"openai-chat", usage.OpenAIChat},
		{"openai-responses", usage.OpenAIResponses},
		{"anthropic", usage.Anthropic},
		{"gemini", usage.Gemini},
		{"auto", usage.Auto},
		{"", usage.Auto},
		{" Gemini ", usage.Gemini},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := usage.ParseFormat(tt.in)
			if err != nil || got != tt.want {
				t.Fatalf("ParseFormat(%q) = %q, %v, want %q, nil", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParseFormatRejects(t *testing.T) {
	for _, in := range []string{"openai", "claude", "gemini-sse", "auto,gemini"} {
		t.Run(in, func(t *testing.T) {
			_, err := usage.ParseFormat(in)
			if !errors.Is(err, budget.ErrInvalid) || !strings.Contains(err.Error(), in) {
				t.Fatalf("ParseFormat(%q) error = %v, want ErrInvalid naming %q", in, err, in)
			}
		})
	}
}

func TestFormatForPath(t *testing.T) {
	tests := []struct {
		path string
		want usage.Format
	}{
		{"/v1/chat/completions", usage.OpenAIChat},
		{"/openai/deployments/gpt/chat/completions?api-version=2024-10-21", usage.OpenAIChat},
		{"/v1/completions", usage.OpenAIChat},
		{"/v1/responses", usage.OpenAIResponses},
		{"/backend-api/codex/responses", usage.OpenAIResponses},
		{"/v1/responses/compact", usage.OpenAIResponses},
		{"/backend-api/codex/responses/compact", usage.OpenAIResponses},
		{"/v1/messages", usage.Anthropic},
		{"/v1/messages?beta=true", usage.Anthropic},
		{"/v1/messages/count_tokens", usage.Auto},
		{"/v1beta/models/gemini-2.5-flash:generateContent", usage.Gemini},
		{"/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", usage.Gemini},
		{"/v1/projects/p/locations/l/publishers/google/models/g:streamGenerateContent", usage.Gemini},
		{"/v1internal:streamGenerateContent?alt=sse", usage.Gemini},
		{"/v1beta/openai/chat/completions", usage.OpenAIChat},
		{"/v1beta:chatCompletions", usage.OpenAIChat},
		{"/v1/models", usage.Auto},
		{"", usage.Auto},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			if got := usage.FormatForPath(tt.path); got != tt.want {
				t.Fatalf("FormatForPath(%q) = %q, want %q", tt.path, got, tt.want)
			}
		})
	}
}

// TestPathHintWins: a path hint fixes the format even when the payload
// alone would be read differently.
// TestCompactionDetected: a compaction names its object, and without a
// path hint the parser reads it as Responses usage even when its usage
// has neither total_tokens nor details (which alone would pass for
// Anthropic's).
func TestCompactionDetected(t *testing.T) {
	body := `{"id":"resp_c","object":"response.compaction","output":[],"usage":{"input_tokens":1200,"output_tokens":300}}`
	got, err := usage.ParseAll(usage.Auto, "", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	want := budget.Usage{Input: 1200, Output: 300}
	if got.Format != usage.OpenAIResponses || got.Usage != want || !got.Complete || got.ID != "resp_c" {
		t.Errorf("got %+v, want complete Responses usage %+v of resp_c", got, want)
	}
}

func TestPathHintWins(t *testing.T) {
	body := `{"usage":{"input_tokens":7,"output_tokens":3,"total_tokens":10}}`
	tests := []struct {
		path string
		want usage.Format
	}{
		{"/v1/messages", usage.Anthropic},
		{"/v1/responses", usage.OpenAIResponses},
		{"", usage.OpenAIResponses},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			got, err := usage.ParseAll(usage.Auto, tt.path, strings.NewReader(body))
			if err != nil || got.Format != tt.want || got.Usage != (budget.Usage{Input: 7, Output: 3}) {
				t.Fatalf("got %+v, %v, want format %q with input 7 output 3", got, err, tt.want)
			}
		})
	}
}

func TestParseAllNoUsage(t *testing.T) {
	tests := []struct {
		name   string
		format usage.Format
		path   string
		body   string
		says   string
	}{
		{"error body explicit", usage.Anthropic, "", `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`, "format anthropic"},
		{"error body by path", usage.Auto, "/v1/chat/completions", `{"error":{"message":"bad"}}`, "detected openai-chat"},
		{"empty body", usage.Auto, "", "", "none detected"},
		{"chat stream without include_usage", usage.Auto, "", "data: {\"object\":\"chat.completion.chunk\",\"choices\":[{\"delta\":{}}]}\n\ndata: [DONE]\n\n", "detected openai-chat"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := usage.ParseAll(tt.format, tt.path, strings.NewReader(tt.body))
			if !errors.Is(err, budget.ErrInvalid) || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("error = %v, want ErrInvalid saying %q", err, tt.says)
			}
			if got.Found || got.Complete {
				t.Fatalf("result %+v, want nothing found", got)
			}
		})
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

func TestParseAllReadError(t *testing.T) {
	_, err := usage.ParseAll(usage.Auto, "", failingReader{})
	if err == nil || errors.Is(err, budget.ErrInvalid) {
		t.Fatalf("error = %v, want the read error, not ErrInvalid", err)
	}
}
