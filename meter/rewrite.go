package meter

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// maxRewriteBody caps the request body read to add include_usage; a larger
// body is forwarded as it is.
const maxRewriteBody = 32 << 20

// includeUsage makes an OpenAI Chat streaming request ask for usage
// (stream_options.include_usage = true), without which the stream carries
// none and could not be metered. Only the bytes needed change; other
// requests pass byte-identical. A client's explicit false is overridden:
// the meter must see the usage.
func includeUsage(r *http.Request) error {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength > maxRewriteBody {
		return nil
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRewriteBody+1))
	if err != nil {
		return fmt.Errorf("read request body: %w", err)
	}
	out := body
	if len(body) <= maxRewriteBody {
		if b, ok := withIncludeUsage(body); ok {
			out = b
		}
	}
	rest := r.Body
	if len(body) > maxRewriteBody {
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(body), rest), rest}
		return nil
	}
	rest.Close()
	setBody(r, out)
	return nil
}

// setBody replaces r's body with b and fixes its length.
func setBody(r *http.Request, b []byte) {
	r.Body = io.NopCloser(bytes.NewReader(b))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	r.ContentLength = int64(len(b))
	r.Header.Del("Content-Length")
	r.Header.Del("Transfer-Encoding")
	r.TransferEncoding = nil
}

// member is one member of a JSON object: where its value lies in the text.
type member struct {
	start, end int
}

// members maps the top-level keys of the JSON object b to their value
// spans; ok is false when b is not a well-formed object.
func members(b []byte) (map[string]member, bool) {
	dec := json.NewDecoder(bytes.NewReader(b))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, false
	}
	out := map[string]member{}
	for dec.More() {
		t, err := dec.Token()
		key, isKey := t.(string)
		if err != nil || !isKey {
			return nil, false
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, false
		}
		end := int(dec.InputOffset())
		out[key] = member{end - len(v), end}
	}
	if _, err := dec.Token(); err != nil {
		return nil, false
	}
	return out, true
}

// withIncludeUsage returns body with stream_options.include_usage set to
// true when it is a streaming request that lacks it; ok is false when
// nothing needs to (or can) change.
func withIncludeUsage(body []byte) ([]byte, bool) {
	top, ok := members(body)
	if !ok {
		return nil, false
	}
	if s, ok := top["stream"]; !ok || string(body[s.start:s.end]) != "true" {
		return nil, false
	}
	so, ok := top["stream_options"]
	if !ok {
		open := bytes.IndexByte(body, '{')
		return splice(body, open+1, open+1, `"stream_options":{"include_usage":true},`), true
	}
	val := body[so.start:so.end]
	if bytes.Equal(val, []byte("null")) {
		return splice(body, so.start, so.end, `{"include_usage":true}`), true
	}
	opts, ok := members(val)
	if !ok {
		return nil, false // not an object: the upstream will reject it anyway
	}
	if iu, ok := opts["include_usage"]; ok {
		if string(val[iu.start:iu.end]) == "true" {
			return nil, false
		}
		return splice(body, so.start+iu.start, so.start+iu.end, "true"), true
	}
	ins, sep := so.start+bytes.IndexByte(val, '{')+1, ","
	if len(opts) == 0 {
		sep = ""
	}
	return splice(body, ins, ins, `"include_usage":true`+sep), true
}

// splice replaces b[i:j] with s in a new slice.
func splice(b []byte, i, j int, s string) []byte {
	out := make([]byte, 0, len(b)-(j-i)+len(s))
	out = append(out, b[:i]...)
	out = append(out, s...)
	return append(out, b[j:]...)
}
