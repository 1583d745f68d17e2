package controller_test

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
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/controller"
	"github.com/bot-bottle/bottlecap/daemon/daemontest"
)

// startLimited runs a daemon with the given limits (zero fields: defaults).
func startLimited(t *testing.T, lim controller.Limits) *daemon {
	t.Helper()
	d := daemontest.Start(t, daemontest.Options{Limits: lim})
	return &daemon{Daemon: d, t: t, dir: d.Dir, sock: d.Sock, db: d.DB, c: d.Client}
}

// hangGuard bounds a read that the daemon must end: it is not a timing
// assertion, only a way to fail instead of hanging when it does not.
const hangGuard = 10 * time.Second

func dialSock(t *testing.T, sock string) net.Conn {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedByServer reads c until the daemon closes it and returns what came
// before; it fails the test if the connection is still open at hangGuard.
func closedByServer(t *testing.T, c net.Conn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(hangGuard))
	b, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the daemon never closed the connection (read %q)", b)
	}
	return string(b)
}

// metric reads one sample of the daemon's /metrics.
func (d *daemon) metric(name string) float64 {
	d.t.Helper()
	_, body := d.raw("GET", "/metrics", "", "")
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	d.t.Fatalf("no metric %s in\n%s", name, body)
	return 0
}

func TestIdleKeepAliveConnectionIsClosed(t *testing.T) {
	d := startLimited(t, controller.Limits{IdleTimeout: 50 * time.Millisecond})
	c := dialSock(t, d.sock)
	fmt.Fprint(c, "GET /v1/verdict?bottle=b1&provider=claude HTTP/1.1\r\nHost: bottlecap\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != 200 || resp.Close {
		t.Fatalf("got %d (close %v), want 200 on a kept-alive connection", resp.StatusCode, resp.Close)
	}
	// The client now sends nothing: the daemon must hang up on it.
	c.SetReadDeadline(time.Now().Add(hangGuard))
	if n, err := br.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("idle connection: got %d bytes, %v; want the daemon to close it (EOF)", n, err)
	}
}

func TestConnectionThatNeverSendsARequestIsClosed(t *testing.T) {
	d := startLimited(t, controller.Limits{ReadHeaderTimeout: 50 * time.Millisecond})
	c := dialSock(t, d.sock)
	fmt.Fprint(c, "GET /v1/verdict?bottle=b1") // and never the rest of the header
	// net/http answers a header cut short with a bare 400 before closing.
	if got := closedByServer(t, c); got != "" && !strings.HasPrefix(got, "HTTP/1.1 400") {
		t.Errorf("got %q, want the connection closed, at most after a 400", got)
	}
}

func TestTricklingBodyIsCutOff(t *testing.T) {
	for _, ct := range []string{"application/json", "application/x-ndjson"} {
		t.Run(ct, func(t *testing.T) {
			d := startLimited(t, controller.Limits{ReadTimeout: 200 * time.Millisecond})
			c := dialSock(t, d.sock)
			// A megabyte announced, a byte at a time: without a read
			// timeout the daemon would wait for it for days.
			fmt.Fprintf(c, "POST /v1/usage HTTP/1.1\r\nHost: bottlecap\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n{", ct, 1<<20)
			stop := make(chan struct{})
			defer close(stop)
			go trickle(c, stop)
			reply := closedByServer(t, c)
			if reply != "" && (!strings.HasPrefix(reply, "HTTP/1.1 408") || !strings.Contains(reply, "read timeout")) {
				t.Errorf("got %q, want the connection closed, at most after a 408 naming the timeout", reply)
			}
			if totals, _ := d.db.Totals(context.Background()); len(totals) != 0 {
				t.Errorf("got totals %+v, want nothing stored", totals)
			}
		})
	}
}

// trickle writes one byte every 20 ms until stop or a write fails.
func trickle(c net.Conn, stop <-chan struct{}) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
			if _, err := c.Write([]byte(" ")); err != nil {
				return
			}
		}
	}
}

// A body of bad lines is refused at the first one: the client sends the
// bad line and then nothing (it never ends its chunked body), so a reply
// proves the daemon did not wait for the rest.
func TestNDJSONRefusedAtFirstBadLineWithoutReadingTheRest(t *testing.T) {
	d := startDaemon(t, nil, nil)
	c := dialSock(t, d.sock)
	good := `{"id":"a","bottle":"b1","provider":"claude","input_tokens":1}` + "\n"
	chunk := good + "{}\n"
	fmt.Fprintf(c, "POST /v1/usage HTTP/1.1\r\nHost: bottlecap\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n", len(chunk), chunk)
	c.SetReadDeadline(time.Now().Add(hangGuard))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no reply while the body was still open: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 400 || !strings.Contains(string(b), "report 2") || !strings.Contains(string(b), "id") {
		t.Errorf("got %d %s, want 400 naming report 2's id", resp.StatusCode, b)
	}
	if totals, _ := d.db.Totals(context.Background()); len(totals) != 0 {
		t.Errorf("got totals %+v, want nothing stored (the good line is not committed either)", totals)
	}
}

func TestIngestOverTheReportCapIs413(t *testing.T) {
	d := startLimited(t, controller.Limits{MaxIngestReports: 5})
	lines := func(n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, `{"id":"m%d","bottle":"b1","provider":"claude","input_tokens":1}`+"\n", i)
		}
		return b.String()
	}
	status, body := d.raw("POST", "/v1/usage", "application/x-ndjson", lines(6))
	if status != http.StatusRequestEntityTooLarge || !strings.Contains(body, "more than 5 reports") {
		t.Errorf("6 reports: got %d %s, want 413 naming the cap of 5", status, body)
	}
	if totals, _ := d.db.Totals(context.Background()); len(totals) != 0 {
		t.Errorf("got totals %+v, want nothing stored", totals)
	}
	if status, body := d.raw("POST", "/v1/usage", "application/x-ndjson", lines(5)); status != 200 || !strings.Contains(body, `"accepted":5`) {
		t.Errorf("5 reports: got %d %s, want all 5 accepted", status, body)
	}
}

// A body over the byte cap is 413 whether its length is announced (refused
// before reading) or not (refused when the cap is reached), single report
// or NDJSON; a cut-off last line must not be reported as bad JSON.
func TestIngestOverTheByteCapIs413(t *testing.T) {
	d := startDaemon(t, nil, nil)
	huge := `{"id":"m","bottle":"b1","provider":"claude","model":"` + strings.Repeat("x", api.MaxIngestBytes) + `"}` + "\n"
	for _, ct := range []string{"", "application/x-ndjson"} {
		for _, announced := range []bool{true, false} {
			t.Run(fmt.Sprintf("%q announced=%v", ct, announced), func(t *testing.T) {
				var body io.Reader = strings.NewReader(huge)
				if !announced {
					body = io.MultiReader(body) // hides the length: chunked
				}
				status, reply := d.rawReader("POST", "/v1/usage", ct, body)
				if status != http.StatusRequestEntityTooLarge || !strings.Contains(reply, "larger than") {
					t.Errorf("got %d %.200s, want 413 naming the size cap", status, reply)
				}
			})
		}
	}
}
