package meter

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/meter/usage"
)

// counter is a provider's own token-counting endpoint (--count-tokens,
// SPEC section 11): where it is under the API's base URL, and the
// top-level fields of a request it takes (it refuses the others, such as
// stream and max_tokens).
type counter struct {
	path   string
	fields []string
}

// counters are the counting endpoints by the format of the request they
// count: Anthropic Messages and OpenAI Responses have one.
var counters = map[usage.Format]counter{
	usage.Anthropic: {"/v1/messages/count_tokens",
		[]string{"model", "messages", "system", "tools", "tool_choice", "thinking", "mcp_servers"}},
	usage.OpenAIResponses: {"/v1/responses/input_tokens",
		[]string{"model", "input", "instructions", "tools", "tool_choice", "previous_response_id", "conversation",
			"reasoning", "text", "truncation", "parallel_tool_calls"}},
}

// countHeaders are the request headers the counting call carries: the
// client's credentials and API version, as its own request would.
var countHeaders = []string{"Authorization", "X-Api-Key", "Anthropic-Version", "Anthropic-Beta",
	"Openai-Organization", "Openai-Project"}

// maxCountReply bounds the counting endpoint's answer the meter reads.
const maxCountReply = 64 << 10

// countTokens asks the upstream how many input tokens body holds, with
// the client's credentials. ok is false when the endpoint has no counting
// endpoint or the call fails in any way; the offline estimate stands then.
func (p *Proxy) countTokens(r *http.Request, up *upstream, ep *budget.Endpoint, body []byte) (n int64, ok bool) {
	c, has := counters[usage.Format(ep.Format)]
	if !has || !strings.HasPrefix(c.path, ep.Path+"/") || len(body) == 0 {
		// The counting call sits under the API's own endpoint; a backend
		// that speaks the format elsewhere (ChatGPT's Codex backend) has
		// none, and is not sent the client's credentials for a guess.
		return 0, false
	}
	fields, ok := onlyMembers(body, c.fields)
	if !ok {
		return 0, false
	}
	ctx, cancel := context.WithTimeout(r.Context(), p.cfg.GateTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, up.URL.JoinPath(c.path).String(), bytes.NewReader(fields))
	if err != nil {
		return 0, false
	}
	for _, h := range countHeaders {
		if v := r.Header.Values(h); len(v) > 0 {
			req.Header[h] = v
		}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := p.cfg.Transport.RoundTrip(req)
	if err != nil {
		p.log.Debug("token counting endpoint unreachable; using the offline estimate", "provider", up.Provider, "err", err.Error())
		return 0, false
	}
	defer resp.Body.Close()
	var reply struct {
		InputTokens *int64 `json:"input_tokens"`
	}
	err = json.NewDecoder(io.LimitReader(resp.Body, maxCountReply)).Decode(&reply)
	if resp.StatusCode != http.StatusOK || err != nil || reply.InputTokens == nil || *reply.InputTokens < 0 {
		p.log.Debug("token counting endpoint did not count; using the offline estimate", "provider", up.Provider, "status", resp.StatusCode)
		return 0, false
	}
	return *reply.InputTokens, true
}

// onlyMembers is the JSON object body with only the given top-level
// members, their values copied as they are.
func onlyMembers(body []byte, keep []string) ([]byte, bool) {
	top, ok := members(body)
	if !ok {
		return nil, false
	}
	out := []byte{'{'}
	for _, k := range keep {
		m, ok := top[k]
		if !ok {
			continue
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		key, _ := json.Marshal(k) // a string always marshals
		out = append(append(append(out, key...), ':'), body[m.start:m.end]...)
	}
	return append(out, '}'), true
}
