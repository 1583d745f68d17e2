package usage_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/bot-bottle/bottlecap/meter/usage"
)

// codeAssistWrapped is a recorded Gemini stream as Code Assist sends it
// (Gemini CLI signed in with Google, cloudcode-pa.googleapis.com
// /v1internal:streamGenerateContent): each event's Gemini response wrapped
// in "response", next to a "traceId" (gemini-cli's CaGenerateContentResponse,
// packages/core/src/code_assist/converter.ts). keepID false drops the
// inner responseId, so only the traceId names the response.
func codeAssistWrapped(t *testing.T, events []string, keepID bool) []byte {
	t.Helper()
	var out bytes.Buffer
	for _, ev := range events {
		data := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(ev), "data:"))
		var inner map[string]any
		if err := json.Unmarshal([]byte(data), &inner); err != nil {
			t.Fatalf("fixture event %q: %v", data, err)
		}
		if !keepID {
			delete(inner, "responseId")
		}
		b, err := json.Marshal(map[string]any{"response": inner, "traceId": "trace-7f3a"})
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&out, "data: %s\r\n\r\n", b)
	}
	return out.Bytes()
}

// sseEvents splits an SSE recording into its events.
func sseEvents(body []byte) []string {
	var out []string
	for _, e := range strings.Split(strings.ReplaceAll(string(body), "\r\n", "\n"), "\n\n") {
		if strings.TrimSpace(e) != "" {
			out = append(out, e)
		}
	}
	return out
}

// TestCodeAssistWrappedResponse: the Gemini parser reads the usage, model
// and end of a response Code Assist wraps, whole or in any chunking, by
// the path or by the payload alone, and names it by its traceId when the
// inner response has no id.
func TestCodeAssistWrappedResponse(t *testing.T) {
	var fx fixture
	for _, f := range fixtures(t) {
		if f.File == "gemini-streamgeneratecontent.sse" {
			fx = f
		}
	}
	events := sseEvents(fx.body(t))
	for _, keepID := range []bool{true, false} {
		body := codeAssistWrapped(t, events, keepID)
		wantID := "ru1garvBEoOiqtsP2fznmQw"
		if !keepID {
			wantID = "trace-7f3a"
		}
		for _, c := range []struct {
			name   string
			format usage.Format
			path   string
		}{
			{"explicit format", usage.Gemini, ""},
			{"auto from path", usage.Auto, "/v1internal:streamGenerateContent?alt=sse"},
			{"auto from payload", usage.Auto, ""},
		} {
			t.Run(fmt.Sprintf("%s, inner id %t", c.name, keepID), func(t *testing.T) {
				got, err := usage.ParseAll(c.format, c.path, bytes.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				checkResult(t, got, fx)
				if got.ID != wantID || got.Model != "gemini-2.5-flash" {
					t.Errorf("id, model = %q, %q, want %q, gemini-2.5-flash", got.ID, got.Model, wantID)
				}
				plain, _ := usage.ParseAll(usage.Gemini, "", bytes.NewReader(fx.body(t)))
				if got.DeltaBytes != plain.DeltaBytes || got.DeltaBytes == 0 {
					t.Errorf("delta bytes = %d, want %d as unwrapped", got.DeltaBytes, plain.DeltaBytes)
				}
			})
		}
		for _, seed := range seeds {
			checkResult(t, feed(usage.Gemini, "", body, seed, 7).Result(), fx)
		}
	}
}

// TestCodeAssistCutShort: a wrapped stream cut before its last event is
// found but not complete, as an unwrapped one is.
func TestCodeAssistCutShort(t *testing.T) {
	var fx fixture
	for _, f := range fixtures(t) {
		if f.File == "gemini-streamgeneratecontent.sse" {
			fx = f
		}
	}
	events := sseEvents(fx.body(t))
	got, err := usage.ParseAll(usage.Gemini, "", bytes.NewReader(codeAssistWrapped(t, events[:len(events)-1], true)))
	if err != nil {
		t.Fatal(err)
	}
	if !got.Found || got.Complete || got.Usage.Input != fx.Input {
		t.Errorf("found, complete, input = %t, %t, %d, want true, false, %d", got.Found, got.Complete, got.Usage.Input, fx.Input)
	}
}
