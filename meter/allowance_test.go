package meter_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/client"
	"github.com/bot-bottle/bottlecap/daemon/daemontest"
	"github.com/bot-bottle/bottlecap/meter"
)

// outputSlice is the meter's output slice (meter/allowance.go): what a
// request is admitted with on top of its input estimate, and what a stream
// takes at a time as it runs.
const outputSlice = 4096

// anthropicStream is a fake Anthropic Messages upstream that streams at a
// fixed rate: a content delta of tokensPerEvent tokens ("tok " each, 4
// bytes) every tick, total output tokens in all, then message_delta with
// the usage and message_stop. Its true input count is a known function of
// the body: one token per 4 bytes, rounded up. A pause, when set, is
// waited on after the first delta (to hold a stream in flight).
type anthropicStream struct {
	tokensPerEvent, total int
	tick                  time.Duration
	pause                 chan struct{}

	requests, finished, leftEarly atomic.Int64
	mu                            sync.Mutex
	firstDelta                    chan struct{} // closed when a stream has sent its first delta
}

func newAnthropicStream(tokensPerEvent, total int, tick time.Duration) *anthropicStream {
	return &anthropicStream{tokensPerEvent: tokensPerEvent, total: total, tick: tick, firstDelta: make(chan struct{})}
}

// trueInput is what the fake provider bills for a request body.
func trueInput(body []byte) int64 { return int64((len(body) + 3) / 4) }

func (u *anthropicStream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := u.requests.Add(1)
	body, _ := io.ReadAll(r.Body)
	id := fmt.Sprintf("msg_%s_%d", r.Header.Get("X-Test"), n)
	w.Header().Set("Content-Type", "text/event-stream")
	send := func(ev, data string) bool {
		_, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", ev, data)
		w.(http.Flusher).Flush()
		return err == nil
	}
	in := trueInput(body)
	send("message_start", fmt.Sprintf(`{"type":"message_start","message":{"id":%q,"type":"message","role":"assistant","model":"claude-haiku-4-5","content":[],"usage":{"input_tokens":%d,"output_tokens":1}}}`, id, in))
	send("content_block_start", `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`)
	text := strings.Repeat("tok ", u.tokensPerEvent)
	delta := `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"` + text + `"}}`
	tick := time.NewTicker(u.tick)
	defer tick.Stop()
	for sent := 0; sent < u.total; sent += u.tokensPerEvent {
		if !send("content_block_delta", delta) {
			u.leftEarly.Add(1)
			return
		}
		if sent == 0 {
			u.noteFirstDelta()
		}
		select {
		case <-r.Context().Done():
			u.leftEarly.Add(1)
			return
		case <-tick.C:
		}
	}
	send("content_block_stop", `{"type":"content_block_stop","index":0}`)
	send("message_delta", fmt.Sprintf(`{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":%d}}`, u.total))
	send("message_stop", `{"type":"message_stop"}`)
	u.finished.Add(1)
}

// noteFirstDelta tells a test waiting for a stream in flight, then waits
// on pause, if any.
func (u *anthropicStream) noteFirstDelta() {
	u.mu.Lock()
	select {
	case <-u.firstDelta:
	default:
		close(u.firstDelta)
	}
	pause := u.pause
	u.mu.Unlock()
	if pause != nil {
		<-pause
	}
}

// anthropicRequest is a streaming Messages request whose prompt is n
// bytes of text.
func anthropicRequest(n int) string {
	return `{"model":"claude-haiku-4-5","max_tokens":32000,"stream":true,"messages":[{"role":"user","content":"` +
		strings.Repeat("word ", n/5) + `"}]}`
}

// streamResult is what a client saw of one streamed response: status 0
// when the request failed (err).
type streamResult struct {
	status int
	body   string
	err    error
}

// postMessages sends a Messages request and reads the whole answer.
func postMessages(url, body, tag string) streamResult {
	req, err := http.NewRequest(http.MethodPost, url+"/v1/messages", strings.NewReader(body))
	if err != nil {
		return streamResult{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Test", tag)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return streamResult{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return streamResult{resp.StatusCode, string(b), err}
}

// committed is what the ledger charges a bottle: its reports' counted
// tokens (every weight is 1 in these tests), with how many are incomplete.
func (d *daemon) committed(bottle string) (total int64, reports, incomplete int) {
	for _, r := range d.reports(bottle) {
		total += r.Usage.Total()
		reports++
		if !r.Complete {
			incomplete++
		}
	}
	return total, reports, incomplete
}

// held is what allowances hold at a bottle's governing scope for claude.
func (d *daemon) held(bottle string) int64 {
	d.t.Helper()
	v, err := d.Client.Verdict(context.Background(), client.VerdictQuery{Bottle: bottle, Agent: "implementer", Provider: "claude"})
	if err != nil {
		d.t.Fatalf("verdict: %v", err)
	}
	return v.Held
}

// TestPreflightRefusalNeverReachesUpstream: a request whose input estimate
// plus an output slice the budget cannot cover is refused before anything
// is sent, in the provider's error shape, with x-should-retry: false and a
// message naming the budget (scope, limit, used, held, remaining) and the
// estimate; a request the budget covers goes through.
func TestPreflightRefusalNeverReachesUpstream(t *testing.T) {
	d := startDaemon(t)
	d.register("pre-1", budget.Limits{"claude": budget.Lifetime(20_000)})
	up := newAnthropicStream(10, 100, time.Millisecond)
	_, srv := meterFor(t, d.Sock, "pre-1", newUpstream(t, up.ServeHTTP).URL, nil)

	big := postMessages(srv.URL, anthropicRequest(60_000), "big") // ~22k tokens estimated
	if big.status != http.StatusTooManyRequests {
		t.Fatalf("a request over the budget got %d, want 429: %s", big.status, big.body)
	}
	msg, kind := errorShape(t, "anthropic", []byte(big.body))
	if kind != "rate_limit_error" {
		t.Errorf("error type %q, want rate_limit_error", kind)
	}
	for _, part := range []string{"scope=bottle", "id=pre-1", "provider=claude", "limit=20000", "used=0", "held=", "remaining=", "estimate=", "input estimate"} {
		if !strings.Contains(msg, part) {
			t.Errorf("the refusal %q does not name %s", msg, part)
		}
	}
	if n := up.requests.Load(); n != 0 {
		t.Fatalf("the upstream saw %d requests, want none", n)
	}
	if small := postMessages(srv.URL, anthropicRequest(400), "small"); small.status != http.StatusOK {
		t.Errorf("a request the budget covers got %d: %s", small.status, small.body)
	}
	eventually(t, "the small request is reported", func() bool { return len(d.reports("pre-1")) == 1 })
}

// TestPreflightRefusalHeader: the refusal says not to retry.
func TestPreflightRefusalHeader(t *testing.T) {
	d := startDaemon(t)
	d.register("pre-2", budget.Limits{"claude": budget.Lifetime(1000)})
	_, srv := meterFor(t, d.Sock, "pre-2", newUpstream(t, newAnthropicStream(1, 1, time.Millisecond).ServeHTTP).URL, nil)
	resp := post(t, srv.URL+"/v1/messages", anthropicRequest(100))
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("X-Should-Retry") != "false" {
		t.Errorf("got %d with x-should-retry %q, want 429 and false", resp.StatusCode, resp.Header.Get("X-Should-Retry"))
	}
}

// TestBodyOverCapIs413: a body the meter will not read whole to estimate
// is refused, naming the cap, before it is read or sent.
func TestBodyOverCapIs413(t *testing.T) {
	d := startDaemon(t)
	var calls atomic.Int64
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) { calls.Add(1) })
	_, srv := meterFor(t, d.Sock, "cap-1", up.URL, nil)
	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{", 32<<20+1)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), "32 MiB") {
		t.Errorf("got %d %s, want 413 naming the 32 MiB cap", resp.StatusCode, b)
	}
	if calls.Load() != 0 {
		t.Error("the upstream saw the request")
	}
}

// TestConcurrentStreamsStayWithinBound: 16 streams against one small
// budget, each wanting far more than its share. The pool admits what the
// budget covers, the streams take output slices as they run, and each is
// cut once the budget can pay no more. The ledger then holds at most the
// limit plus one output slice per stream: the bound the meter promises
// (the estimator errs high on this traffic, so its error adds nothing).
// Without allowances the same load spends 16 × 20,000 output tokens.
func TestConcurrentStreamsStayWithinBound(t *testing.T) {
	const streams, limit = 16, 150_000
	d := startDaemon(t)
	d.register("bound-1", budget.Limits{"claude": budget.Lifetime(limit)})
	up := newAnthropicStream(32, 20_000, 2*time.Millisecond)
	p, srv := meterFor(t, d.Sock, "bound-1", newUpstream(t, up.ServeHTTP).URL, nil)

	results := make([]streamResult, streams)
	var wg sync.WaitGroup
	for i := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = postMessages(srv.URL, anthropicRequest(2000), strconv.Itoa(i))
		}()
	}
	wg.Wait()
	admitted, cut := 0, 0
	for i, r := range results {
		switch {
		case r.status == http.StatusOK && strings.Contains(r.body, "event: error"):
			admitted, cut = admitted+1, cut+1
			if !strings.Contains(r.body, "scope=bottle") || !strings.Contains(r.body, "limit=150000") {
				t.Errorf("stream %d was cut without naming the budget: %s", i, lastLine(r.body))
			}
		case r.status == http.StatusOK:
			admitted++
		case r.status != http.StatusTooManyRequests:
			t.Errorf("stream %d: status %d (%v), want 200 or 429", i, r.status, r.err)
		}
	}
	if admitted == 0 || cut == 0 {
		t.Fatalf("%d streams admitted, %d cut: the budget was not exercised", admitted, cut)
	}
	eventually(t, "every admitted stream is reported", func() bool {
		_, n, _ := d.committed("bound-1")
		return n == admitted && p.Pending() == 0
	})
	total, _, incomplete := d.committed("bound-1")
	t.Logf("%d admitted, %d cut, %d incomplete reports: %d committed of %d (overshoot %d, bound %d)",
		admitted, cut, incomplete, total, limit, max(total-limit, 0), streams*outputSlice)
	if total > limit+streams*outputSlice {
		t.Errorf("committed %d, over the limit %d plus one output slice per stream (%d)", total, limit, streams*outputSlice)
	}
	if total < limit/2 {
		t.Errorf("committed %d of %d: the streams were cut long before the budget ran out", total, limit)
	}
	eventually(t, "the idle meter gives its allowance back", func() bool { return d.held("bound-1") == 0 })
}

// lastLine is the last non-empty line of a body, for messages.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// severable is a daemon link that can be cut, as a killed meter's is: no
// renewal, no release, no report gets through any more.
type severable struct {
	meter.Daemon
	dead atomic.Bool
}

var errSevered = errors.New("severed: the meter was killed")

func (s *severable) Allow(ctx context.Context, a api.AllowanceRequest) (api.Allowance, error) {
	if s.dead.Load() {
		return api.Allowance{}, errSevered
	}
	return s.Daemon.Allow(ctx, a)
}

func (s *severable) ReleaseAllowance(ctx context.Context, id string) error {
	if s.dead.Load() {
		return errSevered
	}
	return s.Daemon.ReleaseAllowance(ctx, id)
}

func (s *severable) Ingest(ctx context.Context, rs []api.Report) (api.IngestReply, error) {
	if s.dead.Load() {
		return api.IngestReply{}, errSevered
	}
	return s.Daemon.Ingest(ctx, rs)
}

// shortTTL is default settings with allowances expiring after a second.
func shortTTL() *budget.Settings {
	s := budget.DefaultSettings()
	s.AllowanceTTL = time.Second
	return s
}

// TestKilledMeterAllowanceExpires: a meter that dies holding an allowance
// (it never releases it) denies nobody for longer than the allowance TTL:
// the daemon lets it expire and a second meter is admitted again.
func TestKilledMeterAllowanceExpires(t *testing.T) {
	d := &daemon{Daemon: daemontest.Start(t, daemontest.Options{Settings: shortTTL()}), t: t}
	d.register("kill-1", budget.Limits{"claude": budget.Lifetime(30_000)})
	up := newAnthropicStream(50, 1_000_000, 5*time.Millisecond) // cut (daemon unreachable) soon after the pause
	up.pause = make(chan struct{})
	defer close(up.pause)
	link := &severable{Daemon: client.New(d.Sock, client.WithRetry(0))}
	_, first := meterFor(t, d.Sock, "kill-1", newUpstream(t, up.ServeHTTP).URL, func(c *meter.Config) { c.Daemon = link })
	go postMessages(first.URL, anthropicRequest(30_000), "first")
	<-up.firstDelta
	held := d.held("kill-1")
	if held < 15_000 {
		t.Fatalf("the first meter holds %d, want its request's estimate and slice", held)
	}
	link.dead.Store(true) // killed: it will never renew nor release

	_, second := meterFor(t, d.Sock, "kill-1", newUpstream(t, newAnthropicStream(10, 100, time.Millisecond).ServeHTTP).URL, nil)
	if r := postMessages(second.URL, anthropicRequest(20_000), "second"); r.status != http.StatusTooManyRequests {
		t.Fatalf("while the dead meter's allowance lives, a request needing more than is left got %d, want 429", r.status)
	}
	eventually(t, "the dead meter's allowance expires", func() bool { return d.held("kill-1") < held })
	if r := postMessages(second.URL, anthropicRequest(20_000), "again"); r.status != http.StatusOK {
		t.Errorf("after the expiry the second meter got %d, want 200: %s", r.status, r.body)
	}
}

// TestDaemonRestartWhileHolding: the daemon restarts (forgetting every
// allowance) while a meter holds one for a stream in flight. The stream
// goes on, the meter opens a new allowance for what the stream still
// needs (its renewal or its next slice finds the old one gone), new
// requests are admitted, and the ledger counts every response once.
func TestDaemonRestartWhileHolding(t *testing.T) {
	d := startDaemon(t)
	d.register("restart-2", budget.Limits{"claude": budget.Lifetime(1_000_000)})
	up := newAnthropicStream(16, 30_000, time.Millisecond) // ~5 output slices of deltas, estimated high
	up.pause = make(chan struct{})
	p, srv := meterFor(t, d.Sock, "restart-2", newUpstream(t, up.ServeHTTP).URL, nil)
	done := make(chan streamResult, 1)
	go func() { done <- postMessages(srv.URL, anthropicRequest(2000), "long") }()
	<-up.firstDelta
	if d.held("restart-2") == 0 {
		t.Fatal("the stream in flight holds nothing")
	}
	d.Stop()
	d.Restart()
	if h := d.held("restart-2"); h != 0 {
		t.Fatalf("a restarted daemon holds %d, want nothing (allowances live in memory)", h)
	}
	up.mu.Lock()
	close(up.pause)
	up.pause = nil
	up.mu.Unlock()
	r := <-done
	if r.status != http.StatusOK || strings.Contains(r.body, "event: error") || !strings.Contains(r.body, "message_stop") {
		t.Fatalf("the stream did not finish after the restart: %d %s", r.status, lastLine(r.body))
	}
	if r := postMessages(srv.URL, anthropicRequest(2000), "after"); r.status != http.StatusOK {
		t.Fatalf("a request after the restart got %d: %s", r.status, r.body)
	}
	eventually(t, "both responses are reported", func() bool { return len(d.reports("restart-2")) == 2 && p.Pending() == 0 })
	total, _, incomplete := d.committed("restart-2")
	body := []byte(anthropicRequest(2000))
	if want := 2 * (trueInput(body) + 30_000); total != want || incomplete != 0 {
		t.Errorf("the ledger holds %d tokens (%d incomplete), want %d: each response once, complete", total, incomplete, want)
	}
	v, err := d.Client.Verdict(t.Context(), client.VerdictQuery{Bottle: "restart-2", Agent: "implementer", Provider: "claude"})
	if err != nil || v.Used != total {
		t.Errorf("the verdict counts %d used (%v), want %d", v.Used, err, total)
	}
	eventually(t, "the idle meter gives its new allowance back", func() bool { return d.held("restart-2") == 0 })
}

// TestIdleMeterReleasesWithinSeconds: held goes back to 0 once a meter
// has nothing in flight, without waiting for the allowance's TTL (an hour
// here, so only a release can end it in time).
func TestIdleMeterReleasesWithinSeconds(t *testing.T) {
	s := budget.DefaultSettings()
	s.AllowanceTTL = time.Hour
	d := &daemon{Daemon: daemontest.Start(t, daemontest.Options{Settings: s}), t: t}
	d.register("idle-1", budget.Limits{"claude": budget.Lifetime(1_000_000)})
	_, srv := meterFor(t, d.Sock, "idle-1", newUpstream(t, newAnthropicStream(10, 100, time.Millisecond).ServeHTTP).URL, nil)
	if r := postMessages(srv.URL, anthropicRequest(400), "one"); r.status != http.StatusOK {
		t.Fatalf("got %d", r.status)
	}
	if d.held("idle-1") == 0 {
		t.Fatal("nothing held right after a request: the pool keeps its headroom while in use")
	}
	eventually(t, "held drops to 0", func() bool { return d.held("idle-1") == 0 })
}

// TestWebSocketResponseCutWhenBudgetSpent: a Responses WebSocket response
// that streams past what its budget can pay for takes more as it runs,
// then is cut like an HTTP stream: the client gets an error event naming
// the budget, the upstream socket is closed, and the response is reported
// incomplete at no less than the output that passed.
func TestWebSocketResponseCutWhenBudgetSpent(t *testing.T) {
	const limit = 9000
	d := startDaemon(t)
	d.register("ws-spent", budget.Limits{"codex": budget.Lifetime(limit)})
	gone := make(chan struct{})
	const delta = "tok tok tok tok tok tok tok tok " // 32 bytes a event
	up := newUpstream(t, endlessDeltas("resp_ws_spent", delta, time.Millisecond, gone))
	_, srv := meterFor(t, d.Sock, "ws-spent", up.URL, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c := createOverSocket(t, ctx, srv.URL)
	seen, last := 0, ""
	for {
		_, msg, err := c.Read(ctx)
		if err != nil {
			break
		}
		if strings.Contains(string(msg), "tok ") {
			seen++
		}
		last = string(msg)
	}
	if !strings.Contains(last, `"type":"error"`) || !strings.Contains(last, "scope=bottle") || !strings.Contains(last, "limit=9000") {
		t.Errorf("after %d deltas the last message was %s, want an error event naming the budget", seen, last)
	}
	waitGone(t, gone)
	eventually(t, "the cut response is reported", func() bool { return len(d.reports("ws-spent")) == 1 })
	r := d.reports("ws-spent")[0]
	if r.Complete || r.Output < int64(seen*len(delta)/4) || r.Usage.Total() > limit+outputSlice {
		t.Errorf("report %+v after %d deltas of %d bytes: want incomplete, at least a token per 4 bytes that passed, within the limit plus a slice",
			r, seen, len(delta))
	}
}

// TestCutBeforeResponseCountsInput: a request cut after it went upstream
// but before its response began is reported, incomplete, at its input
// estimate: the provider bills the input it read.
func TestCutBeforeResponseCountsInput(t *testing.T) {
	d := startDaemon(t)
	d.register("cut-unanswered", budget.Limits{"claude": budget.Lifetime(1_000_000)})
	h, arrived, gone := generating("")
	_, srv := meterFor(t, d.Sock, "cut-unanswered", newUpstream(t, h).URL, nil)
	go func() {
		<-arrived
		d.cutoff("cut-unanswered", "runaway agent")
	}()
	body := anthropicRequest(4000)
	if r := postMessages(srv.URL, body, "unanswered"); r.status != http.StatusTooManyRequests {
		t.Fatalf("got %d %s, want the cut's 429", r.status, r.body)
	}
	waitGone(t, gone)
	eventually(t, "the unanswered request is reported", func() bool { return len(d.reports("cut-unanswered")) == 1 })
	if r := d.reports("cut-unanswered")[0]; r.Complete || r.Input < trueInput([]byte(body)) || r.Output != 0 {
		t.Errorf("report %+v, want incomplete, at least the %d input tokens the body holds, no output", r, trueInput([]byte(body)))
	}
}

// TestWindowedRefusalNamesItsWindow: a refusal by a windowed budget says
// which window and when it resets (SPEC section 11's denials).
func TestWindowedRefusalNamesItsWindow(t *testing.T) {
	d := startDaemon(t)
	d.register("win-1", budget.Limits{"claude": {{Tokens: 20_000, Window: budget.DayWindow}, {Tokens: 1_000_000, Window: budget.MonthWindow}}})
	up := newAnthropicStream(10, 100, time.Millisecond)
	_, srv := meterFor(t, d.Sock, "win-1", newUpstream(t, up.ServeHTTP).URL, nil)
	big := postMessages(srv.URL, anthropicRequest(60_000), "big")
	if big.status != http.StatusTooManyRequests {
		t.Fatalf("a request over the day's budget got %d, want 429: %s", big.status, big.body)
	}
	msg, _ := errorShape(t, "anthropic", []byte(big.body))
	for _, part := range []string{"scope=bottle", "limit=20000", "window=day", "resets_at=", "until the budget is raised or its window resets"} {
		if !strings.Contains(msg, part) {
			t.Errorf("the refusal %q does not name %s", msg, part)
		}
	}
}
