package estimate_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/bot-bottle/bottlecap/meter/estimate"
	"github.com/bot-bottle/bottlecap/meter/usage"
)

// bigBody grows a testdata request to about size bytes by repeating its
// messages, as a long coding-agent session does.
func bigBody(b *testing.B, file, list string, size int) []byte {
	b.Helper()
	var r request
	for _, x := range requests(b) {
		if x.File == file {
			r = x
		}
	}
	var body map[string]json.RawMessage
	if err := json.Unmarshal(r.body(b), &body); err != nil {
		b.Fatal(err)
	}
	var items []json.RawMessage
	if err := json.Unmarshal(body[list], &items); err != nil {
		b.Fatal(err)
	}
	grown := items
	for n := len(r.body(b)); n < size; {
		for _, it := range items {
			grown = append(grown, it)
			n += len(it) + 1
		}
	}
	body[list], _ = json.Marshal(grown)
	out, err := json.Marshal(body)
	if err != nil {
		b.Fatal(err)
	}
	return out
}

func benchmarkInput(b *testing.B, file, list string, f usage.Format) {
	body := bigBody(b, file, list, 500<<10)
	e := estimate.New()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		e.Input("p", f, body)
	}
}

// The figures of the README: ns per 500 KB body is ns/op; MB/s is the rate.
func BenchmarkInputAnthropic500K(b *testing.B) {
	benchmarkInput(b, "anthropic-claude-code.json", "messages", usage.Anthropic)
}
func BenchmarkInputChat500K(b *testing.B) {
	benchmarkInput(b, "openai-chat-agent.json", "messages", usage.OpenAIChat)
}
func BenchmarkInputResponses500K(b *testing.B) {
	benchmarkInput(b, "openai-responses-codex.json", "input", usage.OpenAIResponses)
}
func BenchmarkInputGemini500K(b *testing.B) {
	benchmarkInput(b, "gemini-cli.json", "contents", usage.Gemini)
}

// BenchmarkInputText500K is the worst case for the scanner: one long string
// of code with many escapes, no images to skip.
func BenchmarkInputText500K(b *testing.B) {
	line := `\tif err := json.Unmarshal(data, &e); err != nil {\n\t\treturn fmt.Errorf(\"decode %s: %w\", name, err)\n\t}\n`
	body := []byte(`{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"` + string(bytes.Repeat([]byte(line), 500<<10/len(line))) + `"}]}`)
	e := estimate.New()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		e.Input("p", usage.Anthropic, body)
	}
}

func BenchmarkLearn(b *testing.B) {
	e := estimate.New()
	est := e.Input("p", usage.Anthropic, []byte(`{"model":"m","messages":[{"role":"user","content":"hello"}]}`))
	b.ReportAllocs()
	for b.Loop() {
		e.Learn("p", est, 7)
	}
}
