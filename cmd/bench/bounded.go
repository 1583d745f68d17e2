package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/client"
)

func init() { register("bounded", benchBounded) }

// The overshoot workload (SPEC section 10): coding-agent shaped requests,
// ~20k input and ~1k output tokens each, from 64 concurrent streaming
// clients against one bottle budget, until the budget stops them.
const (
	boundedClients     = 64
	boundedLimit       = 8_000_000 // claude tokens: a few seconds of the workload
	boundedInputMin    = 15_000    // input tokens of a request, uniform in [min, max]
	boundedInputMax    = 25_000
	boundedOutput      = 1_000 // output tokens of a full answer
	boundedChunkTokens = 20    // output tokens per stream event
	boundedChunkEvery  = 2 * time.Millisecond
	boundedBodies      = 128 // distinct request bodies the clients pick from
	// agentBytesPerToken is the fake provider's tokenizer: every 4 bytes
	// of the request body, JSON syntax included, are one input token, and
	// every output token is 4 bytes of text. The meter does not know it;
	// its estimator has to learn it from the reports.
	agentBytesPerToken = 4
)

// benchBounded measures how far past a budget 64 concurrent streams spend,
// with the meter's cached gate (charge after) and with allowances.
func benchBounded(ctx context.Context, r *runner) error {
	up := serve(http.HandlerFunc(agentProvider))
	defer up.Close()
	bodies := agentBodies()
	naive, err := overshoot(ctx, r, up.URL, bodies, "bounded-naive", "--allowances=false")
	if err != nil {
		return fmt.Errorf("naive: %w", err)
	}
	bounded, err := overshoot(ctx, r, up.URL, bodies, "bounded-allow")
	if err != nil {
		return fmt.Errorf("allowances: %w", err)
	}
	r.report("overshoot_naive_pct", round3(naive.overshootPct()), "%")
	r.report("overshoot_bounded_pct", round3(bounded.overshootPct()), "%")
	r.report("bounded_spent_pct", round3(bounded.spentPct()), "%") // how much of the budget allowances let the agents use
	r.report("bounded_requests", float64(bounded.requests), "requests")
	r.report("naive_requests", float64(naive.requests), "requests")
	return nil
}

// spend is what one run committed against its limit.
type spend struct {
	limit, used int64
	requests    int64 // requests admitted
}

func (s spend) overshootPct() float64 {
	return 100 * float64(max(s.used-s.limit, 0)) / float64(s.limit)
}

func (s spend) spentPct() float64 { return 100 * float64(s.used) / float64(s.limit) }

// overshoot runs the workload against a fresh daemon and a meter started
// with flags, and returns what the ledger holds once the meter has
// delivered every report.
func overshoot(ctx context.Context, r *runner, upstream string, bodies [][]byte, slug string, flags ...string) (spend, error) {
	d, err := startProcDaemon(ctx, r, "")
	if err != nil {
		return spend{}, err
	}
	defer d.stop()
	c := client.New(d.sock)
	defer c.Close()
	if _, err := c.PutBottle(ctx, slug, api.BottleRequest{Budget: budget.Limits{"claude": budget.Lifetime(boundedLimit)}}); err != nil {
		return spend{}, err
	}
	m, err := startMeterProc(ctx, r, d.sock, upstream, append([]string{"--bottle", slug}, flags...)...)
	if err != nil {
		return spend{}, err
	}
	admitted, err := streamUntilRefused(ctx, m.URL+"/v1/messages", bodies)
	m.stop() // SIGINT: the meter drains its report queue before it exits
	if err != nil {
		return spend{}, err
	}
	b, err := c.Bottle(ctx, slug)
	if err != nil {
		return spend{}, err
	}
	return spend{limit: boundedLimit, used: b.Usage["claude"], requests: admitted}, nil
}

// streamUntilRefused runs boundedClients clients, each streaming requests
// one after another until the meter refuses one or cuts it, and returns
// how many were admitted.
func streamUntilRefused(ctx context.Context, target string, bodies [][]byte) (int64, error) {
	hc := &http.Client{Transport: benchTransport()}
	defer hc.CloseIdleConnections()
	var admitted atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for i := range boundedClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 13))
			for ctx.Err() == nil {
				ok, err := agentTurn(ctx, hc, target, bodies[rng.IntN(len(bodies))])
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				if !ok {
					return
				}
				admitted.Add(1)
			}
		}()
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return 0, err
	}
	return admitted.Load(), ctx.Err()
}

// agentTurn sends one streaming request and reads its answer to the end.
// It returns false when the meter refused it (429/503) or ended the stream
// with an error event.
func agentTurn(ctx context.Context, hc *http.Client, target string, body []byte) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable:
		io.Copy(io.Discard, resp.Body)
		return false, nil
	case resp.StatusCode != http.StatusOK:
		b, _ := io.ReadAll(resp.Body)
		return false, fmt.Errorf("%s: %s: %s", target, resp.Status, b)
	}
	cut, err := readUntilEnd(resp.Body)
	return !cut, err
}

// readUntilEnd reads a stream to its end and reports whether it ended
// with an error event (the meter's cut).
func readUntilEnd(r io.Reader) (cut bool, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if sc.Text() == "event: error" {
			cut = true
		}
	}
	return cut, sc.Err()
}

// agentRequest is an Anthropic Messages request of about inputTokens
// tokens (by the fake provider's tokenizer): a system prompt, tool
// definitions and a conversation whose bulk is source code, the shape of a
// coding agent's turn.
func agentRequest(rng *rand.Rand, inputTokens int) []byte {
	var code strings.Builder
	for code.Len() < inputTokens*agentBytesPerToken-2048 {
		fmt.Fprintf(&code, "func handler%d(w http.ResponseWriter, r *http.Request) {\n\tif err := serve%d(r.Context(), %q); err != nil {\n\t\thttp.Error(w, err.Error(), %d)\n\t}\n}\n\n",
			rng.IntN(1e6), rng.IntN(1e6), fmt.Sprintf("route-%x", rng.Uint32()), 400+rng.IntN(100))
	}
	req := map[string]any{
		"model": "claude-sonnet-4-5", "max_tokens": 8192, "stream": true,
		"system": "You are a coding agent working in a Go repository. Follow the repository's style; run the tests before you answer.",
		"tools": []map[string]any{{"name": "bash", "description": "Run a shell command in the repository.",
			"input_schema": map[string]any{"type": "object", "properties": map[string]any{"command": map[string]string{"type": "string"}}}}},
		"messages": []map[string]any{
			{"role": "user", "content": "Here is server.go; find why the handler leaks connections:\n\n" + code.String()},
		},
	}
	b, _ := json.Marshal(req) // maps of strings always marshal
	return b
}

// agentBodies are boundedBodies requests of random sizes, made before the
// clients start so that the load generator spends its time sending.
func agentBodies() [][]byte {
	rng := rand.New(rand.NewPCG(7, 13))
	out := make([][]byte, boundedBodies)
	for i := range out {
		out[i] = agentRequest(rng, boundedInputMin+rng.IntN(boundedInputMax-boundedInputMin+1))
	}
	return out
}

// endlessHeader asks agentProvider for a stream that only the client ends.
const endlessHeader = "X-Bench-Endless"

// agentProvider answers Anthropic Messages requests as a stream at a fixed
// token rate: message_start with the input count (bytes / 4), text deltas
// of boundedChunkTokens tokens every boundedChunkEvery, then the final
// usage. A client that goes away ends the stream, as a provider does.
func agentProvider(w http.ResponseWriter, r *http.Request) {
	n, _ := io.Copy(io.Discard, r.Body)
	input := n / agentBytesPerToken
	id := "msg_" + strconv.FormatUint(rand.Uint64(), 36)
	w.Header().Set("Content-Type", "text/event-stream")
	f := w.(http.Flusher)
	fmt.Fprintf(w, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":%q,\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\"usage\":{\"input_tokens\":%d,\"output_tokens\":1}}}\n\n", id, input)
	io.WriteString(w, "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n")
	f.Flush()
	chunk := strings.Repeat("tok ", boundedChunkTokens)
	t := time.NewTicker(boundedChunkEvery)
	defer t.Stop()
	endless := r.Header.Get(endlessHeader) != ""
	for sent := 0; endless || sent < boundedOutput; sent += boundedChunkTokens {
		select {
		case <-r.Context().Done():
			return
		case <-t.C:
		}
		fmt.Fprintf(w, "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":%q}}\n\n", chunk)
		f.Flush()
	}
	io.WriteString(w, "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n")
	fmt.Fprintf(w, "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":%d}}\n\n", boundedOutput)
	io.WriteString(w, "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")
}
