package estimate_test

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/bot-bottle/bottlecap/meter/estimate"
	"github.com/bot-bottle/bottlecap/meter/usage"
)

// TestOutputCap: the output cap a body states, per format, read only where
// its provider reads it and only when the meter is sure the provider reads
// the same number; 0 (no cap: the meter sets aside its usual slice) for
// everything else.
func TestOutputCap(t *testing.T) {
	const msgs = `"messages":[{"role":"user","content":"hi"}]`
	tests := []struct {
		name   string
		format usage.Format
		body   string
		want   int64
	}{
		{"anthropic max_tokens", usage.Anthropic, `{"model":"claude-haiku-4-5","max_tokens":200,` + msgs + `}`, 200},
		{"anthropic, thinking within max_tokens", usage.Anthropic, `{"max_tokens":16000,"thinking":{"type":"enabled","budget_tokens":10000},` + msgs + `}`, 16000},
		{"anthropic without max_tokens", usage.Anthropic, `{` + msgs + `}`, 0},
		{"anthropic reads no other format's field", usage.Anthropic, `{"max_output_tokens":200,"max_completion_tokens":200,` + msgs + `}`, 0},
		{"chat max_completion_tokens", usage.OpenAIChat, `{"max_completion_tokens":300,` + msgs + `}`, 300},
		{"chat legacy max_tokens", usage.OpenAIChat, `{"max_tokens":300,` + msgs + `}`, 300},
		{"chat both: the larger", usage.OpenAIChat, `{"max_tokens":300,"max_completion_tokens":50,` + msgs + `}`, 300},
		{"chat n choices each", usage.OpenAIChat, `{"max_completion_tokens":300,"n":3,` + msgs + `}`, 900},
		{"chat n alone is no cap", usage.OpenAIChat, `{"n":3,` + msgs + `}`, 0},
		{"legacy completions best_of candidates each", usage.OpenAIChat, `{"prompt":"hi","max_tokens":100,"n":2,"best_of":5}`, 500},
		{"legacy completions best_of below n", usage.OpenAIChat, `{"prompt":"hi","max_tokens":100,"n":4,"best_of":2}`, 400},
		{"legacy completions best_of not a count", usage.OpenAIChat, `{"prompt":"hi","max_tokens":100,"best_of":1.5}`, 0},
		{"chat n not a count", usage.OpenAIChat, `{"max_completion_tokens":300,"n":0,` + msgs + `}`, 0},
		{"chat one field null", usage.OpenAIChat, `{"max_tokens":null,"max_completion_tokens":300,` + msgs + `}`, 0},
		{"responses max_output_tokens", usage.OpenAIResponses, `{"model":"gpt-5","max_output_tokens":512,"input":"hi"}`, 512},
		{"responses websocket create", usage.OpenAIResponses, `{"type":"response.create","model":"gpt-5","max_output_tokens":64,"input":"hi"}`, 64},
		{"responses reads not max_tokens", usage.OpenAIResponses, `{"max_tokens":512,"input":"hi"}`, 0},
		{"gemini generationConfig", usage.Gemini, `{"contents":[{"parts":[{"text":"hi"}]}],"generationConfig":{"temperature":0.2,"maxOutputTokens":256}}`, 256},
		{"gemini snake case", usage.Gemini, `{"generation_config":{"max_output_tokens":256},"contents":[]}`, 256},
		{"gemini candidates each", usage.Gemini, `{"generationConfig":{"candidateCount":2,"maxOutputTokens":256},"contents":[]}`, 512},
		{"gemini top-level field is not the cap", usage.Gemini, `{"maxOutputTokens":10,"max_output_tokens":10,"contents":[]}`, 0},
		{"gemini cap nested deeper is not the cap", usage.Gemini, `{"generationConfig":{"responseSchema":{"maxOutputTokens":10}},"contents":[]}`, 0},
		{"gemini generationConfig in an array", usage.Gemini, `{"generationConfig":[{"maxOutputTokens":10}],"contents":[]}`, 0},
		{"gemini cap as a string", usage.Gemini, `{"generationConfig":{"maxOutputTokens":"256"},"contents":[]}`, 0},
		{"nested field of the same name", usage.Anthropic, `{"messages":[{"role":"user","content":[{"type":"tool_result","content":"x","max_tokens":5}]}],"metadata":{"max_tokens":5},"max_tokens":900}`, 900},
		{"only nested fields", usage.OpenAIResponses, `{"input":[{"role":"user","content":"hi","max_output_tokens":5}],"text":{"max_output_tokens":5}}`, 0},
		{"tool schema property of the same name", usage.OpenAIChat, `{"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"max_tokens":{"type":"integer"}}}}}],"max_tokens":70,` + msgs + `}`, 70},
		{"a string", usage.Anthropic, `{"max_tokens":"200",` + msgs + `}`, 0},
		{"a float", usage.Anthropic, `{"max_tokens":200.0,` + msgs + `}`, 0},
		{"an exponent", usage.Anthropic, `{"max_tokens":2e2,` + msgs + `}`, 0},
		{"zero", usage.Anthropic, `{"max_tokens":0,` + msgs + `}`, 0},
		{"negative", usage.Anthropic, `{"max_tokens":-200,` + msgs + `}`, 0},
		{"leading zero", usage.Anthropic, `{"max_tokens":0200,` + msgs + `}`, 0},
		{"true", usage.Anthropic, `{"max_tokens":true,` + msgs + `}`, 0},
		{"an object", usage.Anthropic, `{"max_tokens":{"value":200},` + msgs + `}`, 0},
		{"an array", usage.Anthropic, `{"max_tokens":[200],` + msgs + `}`, 0},
		{"huge", usage.Anthropic, `{"max_tokens":99999999999999999999999999,` + msgs + `}`, 0},
		{"just over the most trusted", usage.Anthropic, `{"max_tokens":16777217,` + msgs + `}`, 0},
		{"the most trusted", usage.Anthropic, `{"max_tokens":16777216,` + msgs + `}`, 16777216},
		{"duplicates: the larger", usage.Anthropic, `{"max_tokens":200,` + msgs + `,"max_tokens":4000}`, 4000},
		{"duplicates, one invalid", usage.Anthropic, `{"max_tokens":200,` + msgs + `,"max_tokens":"x"}`, 0},
		{"an escaped key the provider decodes", usage.Anthropic, `{"max_tokens":200,"max\u005ftokens":100000,` + msgs + `}`, 0},
		{"a key differing only in case", usage.OpenAIChat, `{"max_tokens":200,"MAX_TOKENS":100000,` + msgs + `}`, 0},
		{"a gemini key differing only in case", usage.Gemini, `{"generationConfig":{"maxOutputTokens":20,"MaxOutputTokens":9000},"contents":[]}`, 0},
		{"whitespace around", usage.Anthropic, "{ \"max_tokens\" :\n 200 ,\n" + msgs + "}", 200},
		{"the body is not JSON", usage.Anthropic, `{"max_tokens":200,` + msgs, 0},
		{"a cap but an unknown format", usage.Auto, `{"max_tokens":200,` + msgs + `}`, 0},
	}
	e := estimate.New()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := e.Input("p", tt.format, []byte(tt.body)).OutputCap; got != tt.want {
				t.Errorf("OutputCap = %d, want %d", got, tt.want)
			}
		})
	}
}

// TestOutputCapLeavesEstimate: reading the cap changes nothing in the
// input estimate: a generationConfig is counted as before, cap fields are
// not counted.
func TestOutputCapLeavesEstimate(t *testing.T) {
	with := estimate.Scan([]byte(`{"generationConfig":{"maxOutputTokens":256,"temperature":1},"max_tokens":5,"n":2,"contents":[]}`))
	without := estimate.Scan([]byte(`{"generationConfig":{"maxOutputTokenz":256,"temperature":1},"max_tokenz":5,"contents":[]}`))
	if want := without.Text - int64(len("max_tokenz")+len("5")); with.Text != want {
		t.Errorf("text %d with the caps, want %d", with.Text, want)
	}
}

// FuzzOutputCap: whatever the body, a cap the estimator reads is never
// below what encoding/json (a provider's parser: the last duplicate wins,
// escapes decoded) finds in the field the format names, so a client cannot
// state one cap to the meter and another to its provider; and the cap is
// never negative or beyond what the fields could state.
func FuzzOutputCap(f *testing.F) {
	for _, s := range []string{`{"max_tokens":200}`, `{"max_tokens":200,"max_tokens":300}`, `{"max_tokens":1,"max\u005ftokens":9}`,
		`{"max_completion_tokens":5,"n":2}`, `{"generationConfig":{"maxOutputTokens":7}}`, `{"max_output_tokens":3}`} {
		for fi := range 4 {
			f.Add([]byte(s), uint8(fi))
		}
	}
	formats := []usage.Format{usage.Anthropic, usage.OpenAIChat, usage.OpenAIResponses, usage.Gemini}
	f.Fuzz(func(t *testing.T, body []byte, fi uint8) {
		format := formats[int(fi)%len(formats)]
		got := estimate.New().Input("p", format, body).OutputCap
		if got < 0 || got > 2*(1<<24)*(1<<24) {
			t.Fatalf("OutputCap = %d", got)
		}
		if got == 0 {
			return
		}
		if oracle, ok := decodedCap(format, body); ok && oracle > got {
			t.Fatalf("%s body %q: the meter reads a cap of %d, encoding/json %d", format, body, got, oracle)
		}
	})
}

// decodedCap is the cap encoding/json reads in body's field for format f
// (per choice times choices), ok false when it reads none as an integer.
func decodedCap(f usage.Format, body []byte) (int64, bool) {
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil {
		return 0, false
	}
	num := func(m map[string]json.RawMessage, key string) int64 {
		n, err := strconv.ParseInt(strings.TrimSpace(string(m[key])), 10, 64)
		if err != nil {
			return 0
		}
		return n
	}
	switch f {
	case usage.Anthropic:
		return num(top, "max_tokens"), true
	case usage.OpenAIResponses:
		return num(top, "max_output_tokens"), true
	case usage.OpenAIChat:
		return max(num(top, "max_tokens"), num(top, "max_completion_tokens")) * max(num(top, "n"), num(top, "best_of"), 1), true
	}
	var gen map[string]json.RawMessage
	if json.Unmarshal(top["generationConfig"], &gen) != nil {
		return 0, false
	}
	return num(gen, "maxOutputTokens") * max(num(gen, "candidateCount"), 1), true
}
