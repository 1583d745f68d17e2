package usage_test

import (
	"testing"

	"github.com/bot-bottle/bottlecap/meter/usage"
)

func FuzzParserOpenAIChat(f *testing.F)      { fuzzParser(f, usage.OpenAIChat) }
func FuzzParserOpenAIResponses(f *testing.F) { fuzzParser(f, usage.OpenAIResponses) }
func FuzzParserAnthropic(f *testing.F)       { fuzzParser(f, usage.Anthropic) }
func FuzzParserGemini(f *testing.F)          { fuzzParser(f, usage.Gemini) }
func FuzzParserAuto(f *testing.F)            { fuzzParser(f, usage.Auto) }

// fuzzParser seeds the corpus with the recorded fixtures of format (all of
// them for Auto) and checks, for any input cut into three writes at any
// two points: no panic, no negative count, and the same result as one write.
func fuzzParser(f *testing.F, format usage.Format) {
	for _, fx := range fixtures(f) {
		if format == usage.Auto || fx.Format == format {
			body := fx.body(f)
			f.Add(body, uint16(len(body)/3), uint16(len(body)/2))
			if fx.isSSE() {
				f.Add(crlf(body), uint16(1), uint16(len(body)-1))
			}
		}
	}
	f.Fuzz(func(t *testing.T, body []byte, a, b uint16) {
		whole := usage.NewParser(format, "")
		whole.Write(body)
		want := whole.Result()
		if err := want.Usage.Validate(); err != nil {
			t.Fatal(err)
		}

		i, j := cuts(len(body), int(a), int(b))
		split := usage.NewParser(format, "")
		split.Write(body[:i])
		split.Result() // must not disturb what follows
		split.Write(body[i:j])
		split.Write(body[j:])
		if got := split.Result(); got != want {
			t.Fatalf("cut at %d and %d: %+v, whole: %+v", i, j, got, want)
		}
	})
}

// cuts maps two fuzzed numbers to ordered positions in a body of length n.
func cuts(n, a, b int) (int, int) {
	i, j := a%(n+1), b%(n+1)
	if i > j {
		i, j = j, i
	}
	return i, j
}
