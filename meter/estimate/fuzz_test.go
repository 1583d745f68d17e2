package estimate_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/bot-bottle/bottlecap/meter/estimate"
	"github.com/bot-bottle/bottlecap/meter/usage"
)

// FuzzInput: no body makes the estimator panic, return a negative count, or
// 0 for a non-empty body; a body costs at most what its bytes could hold
// (every byte weighed twice at the unknown family's prior with the widest
// margin, plus an image's price for every 13 bytes, the shortest image data
// URL, plus the tools prompt); and the same body gets the same estimate.
func FuzzInput(f *testing.F) {
	for _, r := range requests(f) {
		f.Add(r.body(f), uint8(0))
	}
	for _, s := range []string{`{}`, `{"model":"m","messages":[]}`, `{"a":"data:image/png;base64,"}`, "x", ""} {
		f.Add([]byte(s), uint8(1))
	}
	if b, err := os.ReadFile(filepath.Join("..", "usage", "testdata", "openai-chat-nonstream.json")); err == nil {
		f.Add(b, uint8(2))
	}
	formats := []usage.Format{usage.OpenAIChat, usage.OpenAIResponses, usage.Anthropic, usage.Gemini, usage.Auto}
	f.Fuzz(func(t *testing.T, body []byte, fi uint8) {
		e := estimate.New()
		format := formats[int(fi)%len(formats)]
		got := e.Input("p", format, body)
		if got.Tokens < 0 || len(body) > 0 && got.Tokens == 0 {
			t.Fatalf("%d bytes: %d tokens", len(body), got.Tokens)
		}
		bound := int64(float64(2*len(body))/3.0*1.5) + int64(len(body)/13+1)*2500 + 500 + 1
		if got.Tokens > bound {
			t.Fatalf("%d bytes: %d tokens, above the most it could hold (%d)", len(body), got.Tokens, bound)
		}
		if again := e.Input("p", format, body); again != got {
			t.Fatalf("the same body twice: %+v, then %+v", got, again)
		}
		e.Learn("p", got, got.Tokens+1)
		if out := e.Output("p", got.Model, int64(len(body))); out < 0 {
			t.Fatalf("Output = %d", out)
		}
	})
}
