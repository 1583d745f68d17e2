package estimate_test

import (
	"strings"
	"testing"

	"github.com/bot-bottle/bottlecap/meter/estimate"
)

// b64 is a base64 payload long enough to be taken for an attachment.
var b64 = strings.Repeat("iVBORw0KGgoAAAANSUhEUgAA", 40)

// TestScan: what one pass over a body counts, per rule of the estimate.
func TestScan(t *testing.T) {
	n := func(parts ...string) int64 {
		var s int64
		for _, p := range parts {
			s += int64(len(p))
		}
		return s
	}
	tests := []struct {
		name string
		body string
		want estimate.Scanned
	}{
		{"keys and strings, params and model not read",
			`{"model":"gpt-4o","stream":true,"temperature":0.2,"max_tokens":100,"stream_options":{"include_usage":true},"metadata":{"user_id":"u"},"messages":[{"role":"user","content":"hi"}]}`,
			estimate.Scanned{Text: n("messages", "role", "user", "content", "hi"), Model: "gpt-4o", OK: true}},
		{"a multi-byte character counts one more byte",
			`{"messages":[{"content":"日本é"}]}`,
			estimate.Scanned{Text: n("messages", "content", "日本é") + 3, OK: true}},
		{"numbers and schemas count, an empty tool list is no tools",
			`{"tools":[{"name":"f","parameters":{"type":"object","properties":{"n":{"type":"integer","minimum":1}}}}],"x":[],"y":{}}`,
			estimate.Scanned{Text: n("tools", "name", "f", "parameters", "type", "object", "properties", "n", "type", "integer", "minimum", "1", "x", "y"), Tools: true, OK: true}},
		{"empty tools",
			`{"tools":[],"contents":[]}`,
			estimate.Scanned{Text: n("tools", "contents"), OK: true}},
		{"chat image data URL",
			`{"messages":[{"content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,` + b64 + `","detail":"high"}}]}]}`,
			estimate.Scanned{Text: n("messages", "content", "type", "image_url", "image_url", "url", "detail", "high"), Images: 1, OK: true}},
		{"chat image by URL, typed by its parent",
			`{"messages":[{"content":[{"type":"image_url","image_url":{"url":"https://x/a.png"}}]}]}`,
			estimate.Scanned{Text: n("messages", "content", "type", "image_url", "image_url", "url", "https://x/a.png"), Images: 1, OK: true}},
		{"responses input_image and input_file data URL",
			`{"input":[{"type":"input_image","image_url":"https://x/a.png"},{"type":"input_file","file_data":"data:application/pdf;base64,JVBERi0x"}]}`,
			estimate.Scanned{Text: n("input", "type", "input_image", "image_url", "https://x/a.png", "type", "input_file", "file_data", "data:application/pdf;base64,JVBERi0x"), Images: 1, OK: true}},
		{"anthropic base64 image, media type after the data",
			`{"messages":[{"content":[{"type":"image","source":{"type":"base64","data":"` + b64 + `","media_type":"image/png"}}]}]}`,
			estimate.Scanned{Text: n("messages", "content", "type", "image", "source", "type", "base64", "data", "media_type"), Images: 1, OK: true}},
		{"anthropic image by URL and by file id",
			`{"messages":[{"content":[{"type":"image","source":{"type":"url","url":"https://x/a.png"}},{"type":"image","source":{"type":"file","file_id":"file_1"}}]}]}`,
			estimate.Scanned{Text: n("messages", "content", "type", "image", "source", "type", "url", "url", "https://x/a.png", "type", "image", "source", "type", "file", "file_id", "file_1"), Images: 2, OK: true}},
		{"anthropic PDF counts as text",
			`{"messages":[{"content":[{"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"` + b64 + `"}}]}]}`,
			estimate.Scanned{Text: n("messages", "content", "type", "document", "source", "type", "base64", "media_type", "data", b64), OK: true}},
		{"gemini inlineData and fileData images",
			`{"contents":[{"parts":[{"inlineData":{"mimeType":"image/jpeg","data":"` + b64 + `"}},{"fileData":{"mimeType":"image/png","fileUri":"f"}}]}]}`,
			estimate.Scanned{Text: n("contents", "parts", "inlineData", "mimeType", "data", "fileData", "mimeType", "fileUri", "f"), Images: 2, OK: true}},
		{"base64 data nothing types counts as text",
			`{"messages":[{"content":{"data":"` + b64 + `"}}]}`,
			estimate.Scanned{Text: n("messages", "content", "data", b64), OK: true}},
		{"a short or spaced data string is text",
			`{"messages":[{"data":"hello world"}]}`,
			estimate.Scanned{Text: n("messages", "data", "hello world"), OK: true}},
		{"a URL in a tool result is no image",
			`{"messages":[{"content":[{"type":"web_search_result","url":"https://x/a"}]}]}`,
			estimate.Scanned{Text: n("messages", "content", "type", "web_search_result", "url", "https://x/a"), OK: true}},
		{"signatures are not read",
			`{"messages":[{"content":[{"type":"thinking","thinking":"t","signature":"EqQB"}]},{"parts":[{"text":"x","thoughtSignature":"CiQB"}]}]}`,
			estimate.Scanned{Text: n("messages", "content", "type", "thinking", "thinking", "t", "signature", "parts", "text", "x", "thoughtSignature"), OK: true}},
		{"previous_response_id is kept",
			`{"previous_response_id":"resp_1","input":"hi"}`,
			estimate.Scanned{Text: n("input", "hi"), Previous: "resp_1", OK: true}},
		{"cachedContent chains",
			`{"cachedContent":"cachedContents/abc","contents":[]}`,
			estimate.Scanned{Text: n("contents"), Chained: true, OK: true}},
		{"a null previous_response_id or empty conversation does not chain",
			`{"previous_response_id":null,"conversation":"","input":"hi"}`,
			estimate.Scanned{Text: n("input", "hi"), OK: true}},
		{"escaped quotes and backslashes stay inside the string",
			`{"input":"a\"b\\","x":"\\\""}`,
			estimate.Scanned{Text: n("input", `a\"b\\`, "x", `\\\"`), OK: true}},
		{"whitespace around everything",
			" \n{ \"input\" :\t[ \"a\" , 1 ]\r\n}\n",
			estimate.Scanned{Text: n("input", "a", "1"), OK: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := estimate.Scan([]byte(tt.body)); got != tt.want {
				t.Errorf("Scan = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestScanRefuses: what is not a JSON object is left to the fallback.
func TestScanRefuses(t *testing.T) {
	for _, body := range []string{
		"", "   ", "not json", `[{"a":1}]`, `"a"`, `{"a":`, `{"a":1`, `{"a" 1}`, `{"a":1,}x`,
		`{"a":1} trailing`, `{"a":"unterminated}`, `{"a":[1,2}`, `{"a":@}`, `{1:2}`,
		`{"a":` + strings.Repeat("[", 300) + strings.Repeat("]", 300) + `}`,
	} {
		if got := estimate.Scan([]byte(body)); got.OK {
			t.Errorf("Scan(%q) = %+v, want not OK", body, got)
		}
	}
}
