package usage_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/bot-bottle/bottlecap/meter/usage"
)

// TestDeltaBytesFixtures holds the parser's count of generated content in
// every recorded payload to an oracle that decodes each event with
// encoding/json into the fields each provider documents for text,
// tool-call arguments and thinking, whole or split at random.
func TestDeltaBytesFixtures(t *testing.T) {
	for _, fx := range fixtures(t) {
		t.Run(fx.File, func(t *testing.T) {
			body := fx.body(t)
			want := oracleDeltas(t, fx.Format, events(body))
			if want == 0 {
				t.Fatal("the oracle found no generated content: the fixture or the oracle is wrong")
			}
			for seed := int64(0); seed < 5; seed++ {
				p := feed(fx.Format, fx.path(), body, seed, 97)
				if got := p.Result().DeltaBytes; got != want {
					t.Errorf("seed %d: DeltaBytes = %d, want %d", seed, got, want)
				}
				if got := p.DeltaBytes(); got != want {
					t.Errorf("seed %d: Parser.DeltaBytes() = %d, want %d", seed, got, want)
				}
			}
		})
	}
}

// events cuts a recorded body into its event payloads: SSE data, one JSON
// per line, or a whole body.
func events(body []byte) [][]byte {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) > 0 && trimmed[0] == '{' && json.Valid(trimmed) {
		return [][]byte{trimmed}
	}
	var out [][]byte
	for _, line := range bytes.Split(body, []byte("\n")) {
		line = bytes.TrimSpace(line)
		line = bytes.TrimPrefix(line, []byte("data:"))
		line = bytes.TrimSpace(line)
		if len(line) > 0 && line[0] == '{' {
			out = append(out, line)
		}
	}
	return out
}

func oracleDeltas(t *testing.T, f usage.Format, evs [][]byte) int64 {
	t.Helper()
	var n int64
	for _, ev := range evs {
		var err error
		var d int64
		switch f {
		case usage.OpenAIChat:
			d, err = chatDeltas(ev)
		case usage.OpenAIResponses:
			d, err = responsesDeltas(ev)
		case usage.Anthropic:
			d, err = anthropicDeltas(ev)
		case usage.Gemini:
			d, err = geminiDeltas(ev)
		}
		if err != nil {
			t.Fatalf("oracle: %v in %s", err, ev)
		}
		n += d
	}
	return n
}

type chatMessage struct {
	Content          *string `json:"content"`
	ReasoningContent string  `json:"reasoning_content"`
	Refusal          *string `json:"refusal"`
	ToolCalls        []struct {
		Function struct {
			Arguments string `json:"arguments"`
		} `json:"function"`
	} `json:"tool_calls"`
}

func (m chatMessage) size() int64 {
	n := int64(len(m.ReasoningContent))
	if m.Content != nil {
		n += int64(len(*m.Content))
	}
	if m.Refusal != nil {
		n += int64(len(*m.Refusal))
	}
	for _, c := range m.ToolCalls {
		n += int64(len(c.Function.Arguments))
	}
	return n
}

func chatDeltas(ev []byte) (int64, error) {
	var e struct {
		Object  string `json:"object"`
		Choices []struct {
			Delta   chatMessage `json:"delta"`
			Message chatMessage `json:"message"`
			Text    string      `json:"text"`
		} `json:"choices"`
	}
	err := json.Unmarshal(ev, &e)
	var n int64
	for _, c := range e.Choices {
		n += c.Delta.size() + c.Message.size()
		if e.Object == "text_completion" {
			n += int64(len(c.Text))
		}
	}
	return n, err
}

func responsesDeltas(ev []byte) (int64, error) {
	var e struct {
		Type   string `json:"type"`
		Delta  string `json:"delta"`
		Output []struct {
			Content []struct {
				Text string `json:"text"`
			} `json:"content"`
			Summary []struct {
				Text string `json:"text"`
			} `json:"summary"`
			Arguments string `json:"arguments"`
		} `json:"output"`
	}
	err := json.Unmarshal(ev, &e)
	switch {
	case strings.HasSuffix(e.Type, ".delta"):
		return int64(len(e.Delta)), err
	case e.Type != "":
		return 0, err
	}
	var n int64
	for _, o := range e.Output {
		n += int64(len(o.Arguments))
		for _, c := range o.Content {
			n += int64(len(c.Text))
		}
		for _, s := range o.Summary {
			n += int64(len(s.Text))
		}
	}
	return n, err
}

func anthropicDeltas(ev []byte) (int64, error) {
	var e struct {
		Type  string `json:"type"`
		Delta struct {
			Text        string `json:"text"`
			PartialJSON string `json:"partial_json"`
			Thinking    string `json:"thinking"`
			Content     string `json:"content"`
		} `json:"delta"`
		Content []struct {
			Text     string          `json:"text"`
			Thinking string          `json:"thinking"`
			Input    json.RawMessage `json:"input"`
		} `json:"content"`
	}
	err := json.Unmarshal(ev, &e)
	switch e.Type {
	case "content_block_delta":
		d := e.Delta
		return int64(len(d.Text) + len(d.PartialJSON) + len(d.Thinking) + len(d.Content)), err
	case "message":
		var n int64
		for _, c := range e.Content {
			n += int64(len(c.Text) + len(c.Thinking) + len(c.Input))
		}
		return n, err
	}
	return 0, err
}

func geminiDeltas(ev []byte) (int64, error) {
	var e struct {
		Candidates []struct {
			Content struct {
				Parts []struct {
					Text         string                         `json:"text"`
					FunctionCall struct{ Args json.RawMessage } `json:"functionCall"`
				} `json:"parts"`
			} `json:"content"`
		} `json:"candidates"`
	}
	err := json.Unmarshal(ev, &e)
	var n int64
	for _, c := range e.Candidates {
		for _, p := range c.Content.Parts {
			n += int64(len(p.Text) + len(p.FunctionCall.Args))
		}
	}
	return n, err
}

// TestDeltaBytesCounts: what counts as generated content in each format,
// and what must not (closing events that repeat the text, signatures,
// content_block_start, the request echoed in a Responses body).
func TestDeltaBytesCounts(t *testing.T) {
	const args = `{"path":"main.go","line":3}`
	tests := []struct {
		name   string
		format usage.Format
		body   string
		want   int
	}{
		{"chat content and escapes", usage.OpenAIChat,
			`data: {"object":"chat.completion.chunk","choices":[{"delta":{"content":"a\n\"b\" \u00e9\u2014\ud83d\ude00"}}]}` + "\n\n",
			len("a\n\"b\" é—😀")},
		{"chat tool call arguments", usage.OpenAIChat,
			`data: {"object":"chat.completion.chunk","choices":[{"delta":{"tool_calls":[{"index":0,"function":{"name":"read","arguments":"{\"pa"}}]}}]}` + "\n\n",
			len(`{"pa`)},
		{"chat reasoning and refusal", usage.OpenAIChat,
			`data: {"object":"chat.completion.chunk","choices":[{"delta":{"reasoning_content":"think","refusal":"no"}}]}` + "\n\n",
			len("think") + len("no")},
		{"chat logprobs and filters are not content", usage.OpenAIChat,
			`data: {"object":"chat.completion.chunk","choices":[{"delta":{"content":"x"},"logprobs":{"content":[{"token":"x"}]},"content_filter_results":{"hate":{"filtered":false}}}]}` + "\n\n",
			1},
		{"chat whole body", usage.OpenAIChat,
			`{"object":"chat.completion","choices":[{"message":{"role":"assistant","content":"hello","tool_calls":[{"function":{"name":"f","arguments":"{}"}}]}}],"usage":{"prompt_tokens":1,"completion_tokens":2}}`,
			len("hello") + len("{}")},
		{"legacy completion", usage.OpenAIChat,
			`{"object":"text_completion","choices":[{"text":"once upon"}],"usage":{"prompt_tokens":1,"completion_tokens":2}}`,
			len("once upon")},
		{"responses deltas only", usage.OpenAIResponses,
			"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"Hi\"}\n\n" +
				"event: response.function_call_arguments.delta\ndata: {\"type\":\"response.function_call_arguments.delta\",\"delta\":\"{}\"}\n\n" +
				"event: response.reasoning_summary_text.delta\ndata: {\"type\":\"response.reasoning_summary_text.delta\",\"delta\":\"plan\"}\n\n" +
				"event: response.output_text.done\ndata: {\"type\":\"response.output_text.done\",\"text\":\"Hi\"}\n\n" +
				"event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"output\":[{\"content\":[{\"text\":\"Hi\"}]}],\"usage\":{\"input_tokens\":1,\"output_tokens\":1}}}\n\n",
			len("Hi") + len("{}") + len("plan")},
		{"responses whole body", usage.OpenAIResponses,
			`{"object":"response","instructions":"be brief","text":{"format":{"type":"text"}},"output":[{"type":"reasoning","summary":[{"text":"plan"}]},{"type":"function_call","arguments":"{}"},{"type":"message","content":[{"type":"output_text","text":"Hi"}]}],"usage":{"input_tokens":1,"output_tokens":1}}`,
			len("plan") + len("{}") + len("Hi")},
		{"anthropic deltas", usage.Anthropic,
			"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n" +
				"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"hmm\"}}\n\n" +
				"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"signature_delta\",\"signature\":\"EqQBCgIYAhIM\"}}\n\n" +
				"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n" +
				"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"a\"}}\n\n",
			len("hmm") + len("Hi") + len(`{"a`)},
		{"anthropic whole body", usage.Anthropic,
			`{"type":"message","content":[{"type":"thinking","thinking":"hmm","signature":"EqQB"},{"type":"text","text":"Hi"},{"type":"tool_use","name":"read","input":` + args + `}],"usage":{"input_tokens":1,"output_tokens":1}}`,
			len("hmm") + len("Hi") + len(args)},
		{"gemini text, thoughts and calls", usage.Gemini,
			`{"candidates":[{"content":{"parts":[{"text":"why","thought":true},{"text":"Hi","thoughtSignature":"Eo0HCooH"},{"functionCall":{"name":"read","args":` + args + `}}]}}]}` + "\n",
			len("why") + len("Hi") + len(args)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := usage.NewParser(tt.format, "")
			p.Write([]byte(tt.body))
			if got := p.Result().DeltaBytes; got != int64(tt.want) {
				t.Errorf("DeltaBytes = %d, want %d", got, tt.want)
			}
		})
	}
}

// TestArrivedCounts: HasInput and HasOutput say which of the provider's
// counts the meter may trust in a stream that stops early.
func TestArrivedCounts(t *testing.T) {
	tests := []struct {
		name          string
		format        usage.Format
		body          string
		hasIn, hasOut bool
		complete      bool
	}{
		{"chat before its usage chunk", usage.OpenAIChat,
			`data: {"id":"c","object":"chat.completion.chunk","choices":[{"delta":{"content":"Hi"}}]}` + "\n\n", false, false, false},
		{"chat usage chunk", usage.OpenAIChat,
			"data: " + chatUsage + "\n\n", true, true, true},
		{"anthropic after message_start", usage.Anthropic,
			"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"usage\":{\"input_tokens\":12,\"output_tokens\":1}}}\n\n", true, false, false},
		{"anthropic after message_delta", usage.Anthropic,
			"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"usage\":{\"input_tokens\":12,\"output_tokens\":1}}}\n\n" +
				"event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":30}}\n\n", true, true, true},
		{"responses before completion", usage.OpenAIResponses,
			"data: {\"type\":\"response.created\",\"response\":{\"id\":\"r\",\"usage\":null}}\n\n", false, false, false},
		{"gemini mid-stream", usage.Gemini,
			`data: {"candidates":[{"content":{"parts":[{"text":"1"}]}}],"usageMetadata":{"promptTokenCount":18,"candidatesTokenCount":1},"responseId":"g"}` + "\n\n", true, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := usage.NewParser(tt.format, "")
			p.Write([]byte(tt.body))
			got := p.Result()
			if got.HasInput != tt.hasIn || got.HasOutput != tt.hasOut || got.Complete != tt.complete {
				t.Errorf("HasInput, HasOutput, Complete = %t, %t, %t, want %t, %t, %t",
					got.HasInput, got.HasOutput, got.Complete, tt.hasIn, tt.hasOut, tt.complete)
			}
		})
	}
}
