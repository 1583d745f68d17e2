package usage_test

import (
	"bytes"
	"encoding/json"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/meter/usage"
)

// fixture is one recorded provider payload (copied from
// shared/fixtures/usage, provenance in testdata/*.src.txt) with the counts
// read off it by hand.
type fixture struct {
	File       string       `json:"file"`
	Format     usage.Format `json:"format"`
	Input      int64        `json:"input_tokens"`
	CacheRead  int64        `json:"cache_read_tokens"`
	CacheWrite int64        `json:"cache_write_tokens"`
	Output     int64        `json:"output_tokens"`
	Reasoning  int64        `json:"reasoning_tokens"`
	Total      int64        `json:"total_tokens"`
}

func (f fixture) usage() budget.Usage {
	return budget.Usage{Input: f.Input, CacheRead: f.CacheRead, CacheWrite: f.CacheWrite, Output: f.Output, Reasoning: f.Reasoning}
}

func (f fixture) body(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", f.File))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (f fixture) isSSE() bool   { return strings.HasSuffix(f.File, ".sse") }
func (f fixture) isLines() bool { return strings.HasSuffix(f.File, ".jsonl") }

// path is a request path of the kind the proxy would pass as a hint.
func (f fixture) path() string {
	switch f.Format {
	case usage.OpenAIChat:
		return "/v1/chat/completions"
	case usage.OpenAIResponses:
		return "/v1/responses"
	case usage.Anthropic:
		return "/v1/messages"
	}
	if strings.Contains(f.File, "stream") {
		return "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
	}
	return "/v1beta/models/gemini-2.5-flash:generateContent"
}

func fixtures(t testing.TB) []fixture {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var fs []fixture
	if err := json.Unmarshal(b, &fs); err != nil {
		t.Fatal(err)
	}
	if len(fs) == 0 {
		t.Fatal("expected.json lists no fixtures")
	}
	return fs
}

// feed writes body into a new parser in chunks of random sizes (1 to max
// bytes) drawn from seed.
func feed(f usage.Format, path string, body []byte, seed int64, max int) *usage.Parser {
	p := usage.NewParser(f, path)
	rng := rand.New(rand.NewSource(seed))
	for len(body) > 0 {
		n := min(1+rng.Intn(max), len(body))
		p.Write(body[:n])
		body = body[n:]
	}
	return p
}

// crlf rewrites every line ending as CRLF; cr as a lone CR.
func crlf(b []byte) []byte {
	return bytes.ReplaceAll(bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")), []byte("\n"), []byte("\r\n"))
}

func cr(b []byte) []byte {
	return bytes.ReplaceAll(bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")), []byte("\n"), []byte("\r"))
}

// asSSE frames one-JSON-per-line chunks as server-sent events, the way the
// provider sent them before they were recorded.
func asSSE(lines []byte) []byte {
	var out bytes.Buffer
	for _, l := range bytes.Split(bytes.TrimSpace(lines), []byte("\n")) {
		out.WriteString("data: ")
		out.Write(l)
		out.WriteString("\n\n")
	}
	out.WriteString("data: [DONE]\n\n")
	return out.Bytes()
}

// asArray frames one-JSON-per-line chunks as Gemini's JSON-array stream.
func asArray(lines []byte) []byte {
	parts := bytes.Split(bytes.TrimSpace(lines), []byte("\n"))
	return append(append([]byte("["), bytes.Join(parts, []byte("\n,\r\n"))...), ']')
}

func checkResult(t *testing.T, got usage.Result, want fixture) {
	t.Helper()
	if got.Usage != want.usage() {
		t.Errorf("usage = %+v, want %+v", got.Usage, want.usage())
	}
	if got.Usage.Total() != want.Total {
		t.Errorf("total = %d, want %d", got.Usage.Total(), want.Total)
	}
	if got.Format != want.Format {
		t.Errorf("format = %q, want %q", got.Format, want.Format)
	}
	if !got.Found || !got.Complete {
		t.Errorf("found, complete = %t, %t, want true, true", got.Found, got.Complete)
	}
}
