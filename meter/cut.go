package meter

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/bot-bottle/bottlecap/meter/usage"
)

// refuse answers a request the meter will not forward (or has cut before
// its response began) with why, in up's error shape. A refusal is final:
// the SDKs retry 429 and 5xx twice by default unless told not to.
func refuse(w http.ResponseWriter, up *upstream, why refusal) {
	w.Header().Set("X-Should-Retry", "false")
	writeError(w, up, why.status, why.kind, why.msg)
}

// cutEvent is the last event of a cut event stream: the error in up's
// shape, framed so that the provider's own SDK ends the stream with it as
// an error. res is what the stream said before the cut (the response id
// and model, for OpenAI Responses).
//
//   - Anthropic: an "error" event, as the API sends when it fails
//     mid-stream; the SDKs raise it.
//   - OpenAI Chat and Gemini: a data line whose JSON has an "error"
//     object, which the OpenAI SDKs (and Google's) raise.
//   - OpenAI Responses: response.failed, carrying the error twice: in
//     response.error, where Codex reads it (code insufficient_quota ends
//     Codex's turn without retrying), and as a top-level "error" object,
//     which openai-go and the Python SDK raise as the stream's error.
func cutEvent(up *upstream, format usage.Format, why refusal, res usage.Result) []byte {
	body := errorBody(up.api.Denial, why.status, why.kind, why.msg)
	name := ""
	switch format {
	case usage.Anthropic:
		name = "error"
	case usage.OpenAIResponses:
		name = "response.failed"
		body = responseFailed(body, res)
	}
	data, _ := json.Marshal(body) // maps of strings and numbers always marshal
	var b bytes.Buffer
	if name != "" {
		b.WriteString("event: " + name + "\n")
	}
	b.WriteString("data: ")
	b.Write(data)
	b.WriteString("\n\n")
	return b.Bytes()
}

// responseFailed wraps an OpenAI error object (body, {"error": {...}}) in
// a response.failed event for the response res began.
func responseFailed(body map[string]any, res usage.Result) map[string]any {
	e, _ := body["error"].(map[string]any)
	resp := map[string]any{
		"object": "response", "status": "failed",
		"error": map[string]any{"code": e["code"], "message": e["message"]},
	}
	if res.ID != "" {
		resp["id"] = res.ID
	}
	if res.Model != "" {
		resp["model"] = res.Model
	}
	return map[string]any{"type": "response.failed", "response": resp, "error": e}
}

// eventsEnd is the length of b's whole server-sent events: the index just
// past its last blank line (LF, CRLF or CR line endings), or 0.
func eventsEnd(b []byte) int {
	end := 0
	for _, sep := range [][]byte{[]byte("\n\n"), []byte("\n\r\n"), []byte("\r\r")} {
		if i := bytes.LastIndex(b, sep); i >= 0 && i+len(sep) > end {
			end = i + len(sep)
		}
	}
	return end
}

// isEventStream reports whether a response is a stream of server-sent
// events, which a cut ends with an error event; any other body is simply
// ended.
func isEventStream(h http.Header) bool {
	return strings.HasPrefix(strings.ToLower(h.Get("Content-Type")), "text/event-stream")
}
