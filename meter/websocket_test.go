package meter_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/meter"
)

// wsUpstream is a fake OpenAI Responses WebSocket: for every response.create
// it receives it streams response.created, a text delta and
// response.completed with usage (input 400 of which 100 cached, output 200
// of which 50 reasoning: 600 counted tokens), under ids resp_1, resp_2, …
type wsUpstream struct {
	creates    atomic.Int64
	extensions atomic.Value // the Sec-WebSocket-Extensions offer the upstream saw
	handshakes atomic.Int64
}

func (u *wsUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.handshakes.Add(1)
	u.extensions.Store(r.Header.Get("Sec-WebSocket-Extensions"))
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionContextTakeover})
	if err != nil {
		return
	}
	defer c.CloseNow()
	ctx := r.Context()
	for {
		_, msg, err := c.Read(ctx)
		if err != nil {
			return
		}
		var ev struct{ Type, Model string }
		if json.Unmarshal(msg, &ev) != nil || ev.Type != "response.create" {
			continue
		}
		n := u.creates.Add(1)
		id := fmt.Sprintf("resp_%d", n)
		for _, e := range []string{
			fmt.Sprintf(`{"type":"response.created","sequence_number":0,"response":{"id":%q,"object":"response","status":"in_progress","model":%q,"usage":null}}`, id, ev.Model),
			fmt.Sprintf(`{"type":"response.output_text.delta","sequence_number":1,"item_id":"msg_%d","output_index":0,"content_index":0,"delta":"hello %d"}`, n, n),
			fmt.Sprintf(`{"type":"response.completed","sequence_number":2,"response":{"id":%q,"object":"response","status":"completed","model":%q,"output":[],"usage":{"input_tokens":400,"input_tokens_details":{"cached_tokens":100},"output_tokens":200,"output_tokens_details":{"reasoning_tokens":50},"total_tokens":600}}}`, id, ev.Model),
		} {
			if c.Write(ctx, websocket.MessageText, []byte(e)) != nil {
				return
			}
		}
	}
}

// wsTurn sends one response.create through the SDK and reads events until
// the response ends or an error event arrives; it returns the text deltas
// and the error event's message, if any.
func wsTurn(t *testing.T, conn *responses.ResponseConnection, model string) (text string, errStatus int64, errMsg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	err := conn.Create(ctx, responses.ResponsesClientEventResponseCreateParam{
		Model: model, Input: responses.ResponsesClientEventResponseCreateInputUnionParam{OfString: openai.String("say hello")},
	})
	if err != nil {
		t.Fatalf("send response.create: %v", err)
	}
	for {
		ev, err := conn.Recv(ctx)
		if err != nil {
			t.Fatalf("recv: %v", err)
		}
		switch ev.Type {
		case "response.output_text.delta":
			text += ev.AsResponseOutputTextDelta().Delta
		case "error":
			e := ev.AsResponsesServerEventResponseWsError()
			return text, e.Status, e.Error.Message
		case "response.completed", "response.incomplete", "response.failed":
			return text, 0, ""
		}
	}
}

// TestResponsesWebSocketMeteredAndGated drives the OpenAI Go SDK's
// Responses WebSocket client through the meter: each response is reported
// once with its counts, and once the budget cannot cover another one a
// response.create is answered with an error event naming the budget and
// never reaches the upstream; the socket stays usable.
func TestResponsesWebSocketMeteredAndGated(t *testing.T) {
	d := startDaemon(t)
	d.register("ws-1", budget.Limits{"codex": budget.Lifetime(5000)})
	up := &wsUpstream{}
	upSrv := newUpstream(t, up.ServeHTTP)
	p, srv := meterFor(t, d.Sock, "ws-1", upSrv.URL, func(c *meter.Config) { c.GateCache = -1 })

	client := openai.NewClient(option.WithBaseURL(srv.URL+"/v1/"), option.WithAPIKey("sk-test"), option.WithMaxRetries(0))
	conn, err := client.Responses.Connect(t.Context(), responses.ResponseConnectionOptions{})
	if err != nil {
		t.Fatalf("connect through the meter: %v", err)
	}
	defer conn.Close()
	if ext, _ := up.extensions.Load().(string); ext != "" {
		t.Errorf("the upstream was offered extensions %q; the meter must strip them", ext)
	}

	want := budget.Usage{Input: 300, CacheRead: 100, Output: 200, Reasoning: 50}
	for i := 1; i <= 2; i++ {
		text, status, msg := wsTurn(t, conn, "gpt-5")
		if status != 0 || text != fmt.Sprintf("hello %d", i) {
			t.Fatalf("turn %d: text %q, error %d %q; want the upstream's text", i, text, status, msg)
		}
		eventually(t, "the response is reported", func() bool { return len(d.reports("ws-1")) == i && p.Pending() == 0 })
	}
	// 1200 of 5000 tokens used: the 3800 left cannot cover a response.create's
	// estimate and output slice, so it must be refused.
	text, status, msg := wsTurn(t, conn, "gpt-5")
	if status != 429 || text != "" {
		t.Errorf("turn 3: text %q, error %d %q; want a 429 error event and no text", text, status, msg)
	}
	for _, part := range []string{"scope=bottle", "id=ws-1", "provider=codex", "limit=5000", "used=1200", "estimate="} {
		if !strings.Contains(msg, part) {
			t.Errorf("error event %q does not name the budget (%s)", msg, part)
		}
	}
	if n := up.creates.Load(); n != 2 {
		t.Errorf("the upstream received %d response.create, want 2 (the denied one must not pass)", n)
	}

	got := map[string]budget.Report{}
	for _, r := range d.reports("ws-1") {
		got[r.ID] = r
	}
	for _, id := range []string{"resp_1", "resp_2"} {
		r, ok := got[id]
		if !ok || r.Usage != want || !r.Complete || r.Provider != "codex" || r.Model != "gpt-5" {
			t.Errorf("report %s = %+v (present %v), want usage %+v, complete, codex, gpt-5", id, r, ok, want)
		}
	}
	if len(got) != 2 {
		t.Errorf("%d reports, want one per response (2): %v", len(got), got)
	}
}

// TestResponsesWebSocketFailsClosed: with the daemon unreachable a
// response.create is answered with a 503 error event and goes nowhere.
func TestResponsesWebSocketFailsClosed(t *testing.T) {
	up := &wsUpstream{}
	upSrv := newUpstream(t, up.ServeHTTP)
	_, srv := meterFor(t, "/nonexistent/run/bottlecap.sock", "ws-closed", upSrv.URL, nil)
	client := openai.NewClient(option.WithBaseURL(srv.URL+"/v1/"), option.WithAPIKey("sk-test"))
	conn, err := client.Responses.Connect(t.Context(), responses.ResponseConnectionOptions{})
	if err != nil {
		t.Fatalf("connect through the meter: %v", err)
	}
	defer conn.Close()
	_, status, msg := wsTurn(t, conn, "gpt-5")
	if status != 503 || !strings.Contains(msg, "cannot be reached") {
		t.Errorf("got error event %d %q, want 503 saying the daemon cannot be reached", status, msg)
	}
	if n := up.creates.Load(); n != 0 {
		t.Errorf("the upstream received %d response.create with the gate unreachable", n)
	}
}

// createdUpstream is a Responses WebSocket upstream that answers the
// first message with response.created for id, then hands the socket to
// then (which returns when the upstream should drop it), and never
// finishes the response.
func createdUpstream(id string, then func(context.Context, *websocket.Conn)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		if _, _, err := c.Read(r.Context()); err != nil {
			return
		}
		created := fmt.Sprintf(`{"type":"response.created","response":{"id":%q,"model":"gpt-5","usage":null}}`, id)
		c.Write(r.Context(), websocket.MessageText, []byte(created))
		then(r.Context(), c)
	}
}

// endlessDeltas is a createdUpstream that streams text deltas of delta,
// one every every, until its socket or request ends; it closes gone when
// it stops.
func endlessDeltas(id, delta string, every time.Duration, gone chan<- struct{}) http.HandlerFunc {
	return createdUpstream(id, func(ctx context.Context, c *websocket.Conn) {
		defer close(gone)
		for i := 1; ; i++ {
			ev := fmt.Sprintf(`{"type":"response.output_text.delta","sequence_number":%d,"item_id":"msg_1","output_index":0,"content_index":0,"delta":%q}`, i, delta)
			if c.Write(ctx, websocket.MessageText, []byte(ev)) != nil {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(every):
			}
		}
	})
}

// TestResponsesWebSocketUnfinishedReportedIncomplete: the upstream drops
// the socket after response.created; the response is still reported, as
// incomplete, when the session ends.
func TestResponsesWebSocketUnfinishedReportedIncomplete(t *testing.T) {
	d := startDaemon(t)
	upSrv := newUpstream(t, createdUpstream("resp_cut", func(context.Context, *websocket.Conn) {}))
	_, srv := meterFor(t, d.Sock, "ws-cut", upSrv.URL, nil)
	c, _, err := websocket.Dial(t.Context(), "ws"+strings.TrimPrefix(srv.URL, "http")+"/v1/responses", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if err := c.Write(t.Context(), websocket.MessageText, []byte(`{"type":"response.create","model":"gpt-5"}`)); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // read until the meter passes the upstream's end on
		defer wg.Done()
		for {
			if _, _, err := c.Read(t.Context()); err != nil {
				return
			}
		}
	}()
	wg.Wait()
	eventually(t, "the unfinished response is reported", func() bool { return len(d.reports("ws-cut")) == 1 })
	if r := d.reports("ws-cut")[0]; r.ID != "resp_cut" || r.Complete {
		t.Errorf("report %+v, want resp_cut marked incomplete", r)
	}
}

// TestOtherUpgradesRefused426: a WebSocket the meter cannot meter (another
// path, another method) is answered 426 with x-should-retry: false, and
// never reaches the upstream.
func TestOtherUpgradesRefused426(t *testing.T) {
	var calls atomic.Int64
	upSrv := newUpstream(t, func(w http.ResponseWriter, r *http.Request) { calls.Add(1) })
	_, srv := meterFor(t, "/nonexistent/run/bottlecap.sock", "ws-426", upSrv.URL, nil)
	cases := []struct{ name, method, path, upgrade string }{
		{"realtime websocket", http.MethodGet, "/v1/realtime", "websocket"},
		{"chat websocket", http.MethodGet, "/v1/chat/completions", "websocket"},
		{"responses POST upgrade", http.MethodPost, "/v1/responses", "websocket"},
		{"anthropic websocket", http.MethodGet, "/v1/messages", "websocket"},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, srv.URL+tt.path, nil)
			req.Header.Set("Connection", "Upgrade")
			req.Header.Set("Upgrade", tt.upgrade)
			req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
			req.Header.Set("Sec-WebSocket-Version", "13")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusUpgradeRequired || resp.Header.Get("X-Should-Retry") != "false" {
				t.Errorf("got %d (x-should-retry %q), want 426 with x-should-retry: false", resp.StatusCode, resp.Header.Get("X-Should-Retry"))
			}
			// The provider's error shape, typed as the table's upgrade refusal.
			if !strings.Contains(string(body), `"invalid_request_error"`) || !strings.Contains(string(body), "use plain HTTP") {
				t.Errorf("426 body %s: want the provider's invalid_request_error saying to use plain HTTP", body)
			}
		})
	}
	// A real WebSocket client gets the same answer.
	_, resp, err := websocket.Dial(t.Context(), "ws"+strings.TrimPrefix(srv.URL, "http")+"/v1/realtime?model=gpt-realtime", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusUpgradeRequired {
		t.Errorf("websocket dial of /v1/realtime: err %v, resp %v; want a refused 426 handshake", err, resp)
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("%d refused upgrades reached the upstream", n)
	}
}

// TestCloseEndsLiveWebSocketAndReports: Proxy.Close ends a session whose
// response is still running (http.Server.Shutdown does not see hijacked
// connections): the client gets an error event saying why, then a 1001
// close, and the response is reported, incomplete, before the queue
// drains.
func TestCloseEndsLiveWebSocketAndReports(t *testing.T) {
	d := startDaemon(t)
	created := make(chan struct{})
	upSrv := newUpstream(t, createdUpstream("resp_live", func(ctx context.Context, c *websocket.Conn) {
		close(created)
		c.Read(ctx) // hold the response open until the meter closes the socket
	}))
	p, srv := meterFor(t, d.Sock, "ws-live", upSrv.URL, nil)
	c, _, err := websocket.Dial(t.Context(), "ws"+strings.TrimPrefix(srv.URL, "http")+"/v1/responses", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if err := c.Write(t.Context(), websocket.MessageText, []byte(`{"type":"response.create","model":"gpt-5"}`)); err != nil {
		t.Fatal(err)
	}
	<-created
	if _, msg, err := c.Read(t.Context()); err != nil || !strings.Contains(string(msg), "resp_live") {
		t.Fatalf("client read %q, %v; want response.created", msg, err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	if _, msg, err := c.Read(t.Context()); err != nil || !strings.Contains(string(msg), `"status":503`) || !strings.Contains(string(msg), "shutting down") {
		t.Errorf("client read %q, %v; want an error event saying the meter is shutting down", msg, err)
	}
	if _, _, err := c.Read(t.Context()); websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Errorf("client saw %v, want a 1001 close", err)
	}
	rs := d.reports("ws-live")
	if len(rs) != 1 || rs[0].ID != "resp_live" || rs[0].Complete {
		t.Errorf("reports %+v, want resp_live reported incomplete by the time Close returned", rs)
	}
}

// TestH2CUpgradeIgnoredAndMetered: an h2c upgrade offer (curl --http2 on
// http://) is declined by ignoring it: the request is gated and served over
// HTTP/1.1, and the upstream sees no upgrade.
func TestH2CUpgradeIgnoredAndMetered(t *testing.T) {
	d := startDaemon(t)
	var sawUpgrade atomic.Value
	upSrv := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		sawUpgrade.Store(r.Header.Get("Upgrade") + r.Header.Get("Connection") + r.Header.Get("Http2-Settings"))
		w.Write(readFixture(t, "openai-responses-nonstream.json"))
	})
	_, srv := meterFor(t, d.Sock, "h2c-1", upSrv.URL, nil)
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/responses", strings.NewReader(`{}`))
	req.Header.Set("Connection", "Upgrade, HTTP2-Settings")
	req.Header.Set("Upgrade", "h2c")
	req.Header.Set("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("got %d, want the upstream's 200 over HTTP/1.1", resp.StatusCode)
	}
	if got, _ := sawUpgrade.Load().(string); got != "" {
		t.Errorf("the upstream saw upgrade headers %q", got)
	}
	eventually(t, "the response is reported", func() bool { return len(d.reports("h2c-1")) == 1 })
}

// TestResponsesWebSocketFragmentsPingsAndLargeFrames: a response.create of
// 100 KiB sent in three fragments with a ping between them (64-bit lengths,
// masking across frame boundaries, a control frame inside a message), and
// a response.completed of 70 KiB sent back in three fragments: the upstream
// gets the client's message whole and once, the ping is answered, the
// client gets the upstream's message unchanged, and the usage is counted.
func TestResponsesWebSocketFragmentsPingsAndLargeFrames(t *testing.T) {
	d := startDaemon(t)
	pad := strings.Repeat("x", 70<<10)
	completed := `{"type":"response.completed","response":{"id":"resp_big","model":"gpt-5","output":[{"pad":"` + pad +
		`"}],"usage":{"input_tokens":1234,"output_tokens":56,"total_tokens":1290}}}`
	received := make(chan []byte, 4)
	upSrv := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(1 << 20)
		_, msg, err := c.Read(r.Context())
		if err != nil {
			return
		}
		received <- msg
		mw, err := c.Writer(r.Context(), websocket.MessageText)
		if err != nil {
			return
		}
		third := len(completed) / 3
		for _, part := range []string{completed[:third], completed[third : 2*third], completed[2*third:]} {
			mw.Write([]byte(part))
		}
		mw.Close()
		c.Read(r.Context()) // until the client closes
	})
	_, srv := meterFor(t, d.Sock, "ws-big", upSrv.URL, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/v1/responses", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	c.SetReadLimit(1 << 20)
	got := make(chan []byte, 1)
	go func() { // reads the client's messages (and so answers its pongs)
		_, msg, err := c.Read(ctx)
		if err == nil {
			got <- msg
		}
	}()

	create := `{"type":"response.create","model":"gpt-5","input":"` + strings.Repeat("y", 100<<10) + `"}`
	mw, err := c.Writer(ctx, websocket.MessageText)
	if err != nil {
		t.Fatal(err)
	}
	third := len(create) / 3
	mw.Write([]byte(create[:third]))
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("a ping sent in the middle of a message was not answered: %v", err)
	}
	mw.Write([]byte(create[third : 2*third]))
	mw.Write([]byte(create[2*third:]))
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case msg := <-received:
		if string(msg) != create {
			t.Errorf("the upstream received %d bytes, want the client's %d-byte message unchanged", len(msg), len(create))
		}
	case <-ctx.Done():
		t.Fatal("the upstream never received response.create")
	}
	select {
	case msg := <-got:
		if string(msg) != completed {
			t.Errorf("the client received %d bytes, want the upstream's %d-byte message unchanged", len(msg), len(completed))
		}
	case <-ctx.Done():
		t.Fatal("the client never received response.completed")
	}
	eventually(t, "the response is reported", func() bool { return len(d.reports("ws-big")) == 1 })
	if r := d.reports("ws-big")[0]; r.ID != "resp_big" || r.Usage != (budget.Usage{Input: 1234, Output: 56}) || !r.Complete {
		t.Errorf("report %+v, want resp_big complete with input 1234 output 56", r)
	}
	if len(received) != 0 {
		t.Errorf("the upstream received the message more than once")
	}
}
