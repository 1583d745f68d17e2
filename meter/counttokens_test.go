package meter_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/meter"
)

// countingEndpoint is a fake provider with a token-counting endpoint that
// answers count (or fails with status when it is not 200), recording what
// it was asked; its generation endpoints answer a small whole-JSON body.
type countingEndpoint struct {
	count, status int

	mu     sync.Mutex
	bodies []string
	keys   []string
	calls  int
}

func (u *countingEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	u.mu.Lock()
	defer u.mu.Unlock()
	if strings.HasSuffix(r.URL.Path, "/count_tokens") || strings.HasSuffix(r.URL.Path, "/input_tokens") {
		u.bodies = append(u.bodies, string(b))
		u.keys = append(u.keys, r.Header.Get("X-Api-Key")+r.Header.Get("Authorization"))
		if u.status != http.StatusOK {
			http.Error(w, `{"error":"overloaded"}`, u.status)
			return
		}
		json.NewEncoder(w).Encode(map[string]int{"input_tokens": u.count})
		return
	}
	u.calls++
	if r.URL.Path == "/v1/messages" {
		io.WriteString(w, `{"id":"msg_c","type":"message","model":"claude-haiku-4-5","usage":{"input_tokens":10,"output_tokens":2}}`)
		return
	}
	io.WriteString(w, `{"id":"resp_c","object":"response","status":"completed","model":"gpt-5","usage":{"input_tokens":10,"output_tokens":2}}`)
}

// TestCountTokensAsksTheProvider: with --count-tokens the meter admits on
// the provider's own count (asked with the client's credentials, without
// the fields the counting endpoint refuses), and on the offline estimate
// when the counting endpoint fails.
func TestCountTokensAsksTheProvider(t *testing.T) {
	d := startDaemon(t)
	cases := []struct {
		name, path, provider, body, header, key string
	}{
		{"anthropic", "/v1/messages", "claude",
			`{"model":"claude-haiku-4-5","max_tokens":64,"stream":false,"messages":[{"role":"user","content":"hi"}]}`, "X-Api-Key", "sk-ant-1"},
		{"openai responses", "/v1/responses", "codex",
			`{"model":"gpt-5","stream":false,"max_output_tokens":64,"input":"hi"}`, "Authorization", "Bearer sk-1"},
	}
	for i, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			bottle := "count-" + string(rune('a'+i))
			d.register(bottle, budget.Limits{tt.provider: budget.Lifetime(20_000)})
			up := &countingEndpoint{count: 50_000, status: http.StatusOK}
			_, srv := meterFor(t, d.Sock, bottle, newUpstream(t, up.ServeHTTP).URL, func(c *meter.Config) { c.CountTokens = true })
			send := func() int {
				req, _ := http.NewRequest(http.MethodPost, srv.URL+tt.path, strings.NewReader(tt.body))
				req.Header.Set(tt.header, tt.key)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				return resp.StatusCode
			}
			if got := send(); got != http.StatusTooManyRequests {
				t.Errorf("the provider counts 50000 tokens of a 20000 budget, yet the meter answered %d", got)
			}
			up.mu.Lock()
			if len(up.bodies) != 1 || up.keys[0] != tt.key || strings.Contains(up.bodies[0], "stream") ||
				strings.Contains(up.bodies[0], "max_") || !strings.Contains(up.bodies[0], `"model"`) || up.calls != 0 {
				t.Errorf("counting call: bodies %q, credentials %q, generation calls %d; want one count of the model and input, with %q, and no generation",
					up.bodies, up.keys, up.calls, tt.key)
			}
			up.status = http.StatusServiceUnavailable
			up.mu.Unlock()
			if got := send(); got != http.StatusOK {
				t.Errorf("with the counting endpoint failing the meter answered %d, want 200 on the offline estimate", got)
			}
		})
	}
}

// TestCountTokensNotAskedOfChatGPT: Codex's ChatGPT backend has no
// counting call next to its endpoint, so with --count-tokens a request
// on the ChatGPT path is admitted on the offline estimate and no counting
// call (carrying the client's ChatGPT token) is made.
func TestCountTokensNotAskedOfChatGPT(t *testing.T) {
	d := startDaemon(t)
	d.register("count-chatgpt", budget.Limits{"codex": budget.Lifetime(20_000)})
	up := &countingEndpoint{count: 50_000, status: http.StatusOK}
	_, srv := meterFor(t, d.Sock, "count-chatgpt", newUpstream(t, up.ServeHTTP).URL, func(c *meter.Config) { c.CountTokens = true })
	resp := post(t, srv.URL+"/backend-api/codex/responses", `{"model":"gpt-5","stream":false,"input":"hi"}`)
	io.Copy(io.Discard, resp.Body)
	up.mu.Lock()
	defer up.mu.Unlock()
	if resp.StatusCode != http.StatusOK || len(up.bodies) != 0 || up.calls != 1 {
		t.Errorf("got %d with %d counting calls and %d generation calls; want 200 on the estimate, no counting call, one generation",
			resp.StatusCode, len(up.bodies), up.calls)
	}
}
