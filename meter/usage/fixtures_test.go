package usage_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/bot-bottle/bottlecap/meter/usage"
)

// seeds drive the random chunkings; a failure names its seed.
var seeds = []int64{1, 2, 3, 42, 1234, 99991}

func TestFixturesWhole(t *testing.T) {
	for _, fx := range fixtures(t) {
		t.Run(fx.File, func(t *testing.T) {
			body := fx.body(t)
			for _, c := range []struct {
				name   string
				format usage.Format
				path   string
			}{
				{"explicit format", fx.Format, ""},
				{"auto from path", usage.Auto, fx.path()},
				{"auto from payload", usage.Auto, ""},
			} {
				t.Run(c.name, func(t *testing.T) {
					got, err := usage.ParseAll(c.format, c.path, bytes.NewReader(body))
					if err != nil {
						t.Fatalf("ParseAll: %v", err)
					}
					checkResult(t, got, fx)
				})
			}
		})
	}
}

func TestFixturesChunked(t *testing.T) {
	for _, fx := range fixtures(t) {
		t.Run(fx.File, func(t *testing.T) {
			body := fx.body(t)
			for _, seed := range seeds {
				for _, max := range []int{1, 3, 17, 256} {
					t.Run(fmt.Sprintf("seed %d chunks up to %d", seed, max), func(t *testing.T) {
						checkResult(t, feed(usage.Auto, "", body, seed, max).Result(), fx)
					})
				}
			}
		})
	}
}

// TestFixturesReframed replays each stream in the other framings providers
// use: SSE with CRLF or CR line endings, the line-per-event recordings as
// SSE, and Gemini's chunks as a JSON array.
func TestFixturesReframed(t *testing.T) {
	for _, fx := range fixtures(t) {
		body := fx.body(t)
		variants := map[string][]byte{}
		switch {
		case fx.isSSE():
			variants["crlf"], variants["cr"], variants["lf"] = crlf(body), cr(body), bytes.ReplaceAll(body, []byte("\r\n"), []byte("\n"))
		case fx.isLines():
			variants["sse"], variants["sse crlf"] = asSSE(body), crlf(asSSE(body))
			if fx.Format == usage.Gemini {
				variants["json array"] = asArray(body)
				variants["json array indented"] = indentLines(t, asArray(body))
			}
		}
		for name, b := range variants {
			t.Run(fx.File+"/"+name, func(t *testing.T) {
				for _, seed := range seeds {
					t.Run(fmt.Sprintf("seed %d", seed), func(t *testing.T) {
						checkResult(t, feed(usage.Auto, fx.path(), b, seed, 7).Result(), fx)
					})
				}
			})
		}
	}
}

func TestFixturesIdentity(t *testing.T) {
	tests := []struct {
		file, id, model string
	}{
		{"openai-chat-nonstream.json", "", "gpt-4.1-nano-2025-04-14"},
		{"openai-chat-stream-azure-reasoning.chunks.jsonl", "", "gpt-5-nano-2025-08-07"},
		{"openai-responses-stream-reasoning.sse", "", "gpt-5-2025-08-07"},
		{"openai-responses-compact.json", "resp_001", ""},
		{"anthropic-messages-stream-tooluse.sse", "msg_01AusY9WEbCaj3N7Tv5J4YjH", "claude-haiku-4-5-20251001"},
		{"gemini-streamgeneratecontent.sse", "ru1garvBEoOiqtsP2fznmQw", "gemini-2.5-flash"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := usage.ParseAll(usage.Auto, "", bytes.NewReader(fixture{File: tt.file}.body(t)))
			if err != nil {
				t.Fatal(err)
			}
			if got.ID == "" || (tt.id != "" && got.ID != tt.id) {
				t.Errorf("id = %q, want %q (or any non-empty)", got.ID, tt.id)
			}
			if tt.model != "" && got.Model != tt.model {
				t.Errorf("model = %q, want %q", got.Model, tt.model)
			}
		})
	}
}

// indentLines pretty-prints b as Google's REST stream does.
func indentLines(t *testing.T, b []byte) []byte {
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// TestConcurrentResult: the proxy may ask for a result from another
// goroutine while the body is still being written (run with -race).
func TestConcurrentResult(t *testing.T) {
	body := fixture{File: "openai-responses-stream-websearch.sse"}.body(t)
	p := usage.NewParser(usage.Auto, "/v1/responses")
	done := make(chan struct{})
	go func() {
		defer close(done)
		for b := body; len(b) > 0; b = b[min(len(b), 100):] {
			p.Write(b[:min(len(b), 100)])
		}
	}()
	for {
		select {
		case <-done:
			if got := p.Result(); !got.Complete || got.Usage.Output != 582 {
				t.Fatalf("got %+v, want complete with output 582", got)
			}
			return
		default:
			if got := p.Result(); got.Found && !got.Complete {
				t.Fatalf("got %+v: responses usage is only in the final event", got)
			}
		}
	}
}
