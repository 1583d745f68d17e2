package meter_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/meter"
)

// handshakeUpstream streams events one by one, sending event N+1 only once
// the client says (on seen) that it has read event N. Through a buffering
// proxy the client would never see event N alone and the stream would stall.
func handshakeUpstream(t *testing.T, events []string, seen <-chan struct{}, header http.Header) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		for k, v := range header {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for i, ev := range events {
			if i > 0 {
				select {
				case <-seen:
				case <-time.After(10 * time.Second):
					t.Errorf("the client never saw event %d: the proxy held it back", i-1)
					return
				}
			}
			io.WriteString(w, ev)
			w.(http.Flusher).Flush()
		}
	}
}

// readEvents reads n SSE events from r, telling seen after each one.
func readEvents(t *testing.T, r io.Reader, n int, seen chan<- struct{}) []string {
	t.Helper()
	br := bufio.NewReader(r)
	var got []string
	for i := 0; i < n; i++ {
		var ev strings.Builder
		for {
			line, err := br.ReadString('\n')
			ev.WriteString(line)
			if err != nil {
				t.Fatalf("event %d: %v (got %q)", i, err, ev.String())
			}
			if line == "\n" || line == "\r\n" {
				break
			}
		}
		got = append(got, ev.String())
		seen <- struct{}{}
	}
	return got
}

func post(t *testing.T, url, body string) *http.Response {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestStreamPassesEventByEventAndReportsOnce(t *testing.T) {
	d := startDaemon(t)
	const file = "anthropic-messages-stream-tooluse.sse"
	want := fixtures(t)[file]
	events := sseEvents(readFixture(t, file))
	seen := make(chan struct{}, 1)
	up := newUpstream(t, handshakeUpstream(t, events, seen, http.Header{"X-Upstream": {"yes"}}))
	p, srv := meterFor(t, d.Sock, "dev-1", up.URL, nil)

	resp := post(t, srv.URL+"/v1/messages", `{"model":"claude-haiku-4-5","stream":true}`)
	if resp.StatusCode != 200 || resp.Header.Get("X-Upstream") != "yes" {
		t.Fatalf("status %d, headers %v: want the upstream's 200 and headers", resp.StatusCode, resp.Header)
	}
	got := readEvents(t, resp.Body, len(events), seen)
	if strings.Join(got, "") != strings.Join(events, "") {
		t.Errorf("the stream changed on its way through the meter")
	}
	if rest, _ := io.ReadAll(resp.Body); len(rest) != 0 {
		t.Errorf("extra bytes after the stream: %q", rest)
	}
	eventually(t, "the report is acknowledged", func() bool { return len(d.reports("dev-1")) == 1 && p.Pending() == 0 })
	r := d.reports("dev-1")[0]
	if r.ID != "msg_01AusY9WEbCaj3N7Tv5J4YjH" || r.Usage != want.Usage || !r.Complete ||
		r.Provider != "claude" || r.Agent != "implementer" || r.Host != "127.0.0.1" || r.Model != "claude-haiku-4-5-20251001" {
		t.Errorf("report %+v, want id msg_01AusY9WEbCaj3N7Tv5J4YjH, usage %+v, complete, claude, implementer", r, want.Usage)
	}
}

// TestReportsEveryFormat: each recorded body, streamed or whole, through
// its route, lands in the ledger with the expected counts and provider.
func TestReportsEveryFormat(t *testing.T) {
	d := startDaemon(t)
	routes := map[string]struct{ path, provider string }{
		"anthropic":        {"/v1/messages", "claude"},
		"openai-chat":      {"/v1/chat/completions", "codex"},
		"openai-responses": {"/v1/responses", "codex"},
		"gemini":           {"/v1beta/models/gemini-2.5-flash:streamGenerateContent", "gemini"},
	}
	for file, fx := range fixtures(t) {
		t.Run(file, func(t *testing.T) {
			body := readFixture(t, file)
			up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) { w.Write(body) })
			bottle := "fx-" + strings.NewReplacer(".", "-", "_", "-").Replace(file)
			_, srv := meterFor(t, d.Sock, bottle, up.URL, nil)
			rt := routes[fx.Format]
			resp := post(t, srv.URL+rt.path, `{}`)
			if b, _ := io.ReadAll(resp.Body); string(b) != string(body) {
				t.Fatalf("body changed on its way through")
			}
			eventually(t, "the report lands", func() bool { return len(d.reports(bottle)) == 1 })
			r := d.reports(bottle)[0]
			if r.Usage != fx.Usage || r.Provider != rt.provider || r.ID == "" {
				t.Errorf("report %+v, want usage %+v provider %s and an id", r, fx.Usage, rt.provider)
			}
		})
	}
}

// TestBrokenStreamReportedIncomplete: the upstream dies after
// message_start; what was seen is reported with complete false.
func TestBrokenStreamReportedIncomplete(t *testing.T) {
	d := startDaemon(t)
	events := sseEvents(readFixture(t, "anthropic-messages-stream-tooluse.sse"))
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, events[0]+events[1])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // cut the connection mid-stream
	})
	_, srv := meterFor(t, d.Sock, "broken-1", up.URL, nil)
	resp := post(t, srv.URL+"/v1/messages", `{"stream":true}`)
	b, err := io.ReadAll(resp.Body)
	if err == nil {
		t.Errorf("the client saw a clean end of stream; want the break passed on")
	}
	if !strings.HasPrefix(string(b), events[0]) {
		t.Errorf("the client did not get the events sent before the break: %q", b)
	}
	eventually(t, "the incomplete report lands", func() bool { return len(d.reports("broken-1")) == 1 })
	r := d.reports("broken-1")[0]
	if r.Complete || r.ID != "msg_01AusY9WEbCaj3N7Tv5J4YjH" || r.Input == 0 {
		t.Errorf("report %+v: want incomplete, with the message id and the input counted", r)
	}
}

// TestStatusAndHeadersPassThrough: an upstream error reaches the client as
// it is, and costs nothing.
func TestStatusAndHeadersPassThrough(t *testing.T) {
	d := startDaemon(t)
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "7")
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":{"message":"bad"}}`)
	})
	p, srv := meterFor(t, d.Sock, "err-1", up.URL, nil)
	resp := post(t, srv.URL+"/v1/chat/completions", `{"model":"x"}`)
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 400 || resp.Header.Get("Retry-After") != "7" || string(b) != `{"error":{"message":"bad"}}` {
		t.Errorf("got %d %v %s, want the upstream's 400 as it was", resp.StatusCode, resp.Header, b)
	}
	if p.Pending() != 0 || len(d.reports("err-1")) != 0 {
		t.Errorf("an error response was reported")
	}
}

// TestUnmeteredPathsPassThrough: other paths reach the upstream without a
// gate question or a report.
func TestUnmeteredPathsPassThrough(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.URL.Path) })
	// No daemon at all: an ungated path must still work.
	_, srv := meterFor(t, "/nonexistent/bottlecap.sock", "free-1", up.URL, nil)
	resp, err := http.Get(srv.URL + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != 200 || string(b) != "/v1/models" {
		t.Errorf("got %d %q, want the upstream's answer", resp.StatusCode, b)
	}
}

func TestNewRequiresDaemonAndBottle(t *testing.T) {
	if _, err := meter.New(meter.Config{Bottle: "b"}); err == nil {
		t.Error("New without a daemon succeeded")
	}
	_ = budget.ErrInvalid
	_ = context.Background
}

// TestLargeBodiesPassThroughIntact: bodies many copy buffers long, sent
// concurrently so that pooled buffers are reused between requests, arrive
// byte for byte.
func TestLargeBodiesPassThroughIntact(t *testing.T) {
	body := func(n int) []byte {
		b := make([]byte, 300<<10)
		for i := range b {
			b[i] = byte(n*31 + i*7)
		}
		return b
	}
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		w.Write(body(n))
	})
	_, srv := meterFor(t, "/nonexistent/bottlecap.sock", "big-1", up.URL, nil)
	var wg sync.WaitGroup
	for n := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(srv.URL + "/v1/files?n=" + strconv.Itoa(n))
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			if b, _ := io.ReadAll(resp.Body); !bytes.Equal(b, body(n)) {
				t.Errorf("body %d: %d bytes arrived changed", n, len(b))
			}
		}()
	}
	wg.Wait()
}

// TestRequestBodyNotReadPastItsEnd: http.Transport, having sent a body's
// Content-Length bytes, reads it once more to check it is not longer. If
// that read comes after the proxy has begun the response, the HTTP/1 server
// has drained and closed the inbound body, the read fails and the Transport
// drops the upstream connection: the stream is cut off. Here any read past
// the declared length is held until the client has the response header,
// which forces that order; the meter must never make such a read.
func TestRequestBodyNotReadPastItsEnd(t *testing.T) {
	d := startDaemon(t)
	events := sseEvents(readFixture(t, "anthropic-messages-stream-tooluse.sse"))
	seen := make(chan struct{}, 1)
	up := newUpstream(t, handshakeUpstream(t, events, seen, nil))
	p, _ := meterFor(t, d.Sock, "overread-1", up.URL, nil)
	release := make(chan struct{})
	var overreads atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = &pastEndWatch{ReadCloser: r.Body, left: r.ContentLength, overreads: &overreads, release: release}
		p.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	released := sync.OnceFunc(func() { close(release) })
	t.Cleanup(released)

	resp := post(t, srv.URL+"/v1/messages", `{"model":"claude-haiku-4-5","stream":true}`)
	released() // the client has the header: the server has closed the inbound body
	got := readEvents(t, resp.Body, len(events), seen)
	if strings.Join(got, "") != strings.Join(events, "") {
		t.Errorf("the stream changed on its way through the meter")
	}
	if n := overreads.Load(); n != 0 {
		t.Errorf("the request body was read %d times past its Content-Length", n)
	}
}

// pastEndWatch counts the reads of a request body past its declared
// length, holding each until release is closed.
type pastEndWatch struct {
	io.ReadCloser
	left      int64
	overreads *atomic.Int32
	release   <-chan struct{}
}

func (b *pastEndWatch) Read(p []byte) (int, error) {
	if b.left <= 0 {
		b.overreads.Add(1)
		<-b.release
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}
