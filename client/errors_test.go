package client_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/client"
	"github.com/bot-bottle/bottlecap/client/clienttest"
)

func errorsIs(err, target error) bool { return errors.Is(err, target) }

func TestErrorStatuses(t *testing.T) {
	tests := []struct {
		status int
		want   error
	}{
		{400, budget.ErrInvalid},
		{403, budget.ErrDenied},
		{404, budget.ErrNotFound},
		{409, budget.ErrConflict},
		{413, budget.ErrInvalid},
		{503, budget.ErrUnavailable},
		{500, nil},
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			srv := clienttest.NewServer(t)
			srv.Fail("GET /v1/bottles/{slug}", tt.status, "bottle \"x\" is not known")
			_, err := client.New(srv.Socket, client.WithRetry(0)).Bottle(context.Background(), "x")
			var ce *client.Error
			if !errors.As(err, &ce) {
				t.Fatalf("got %T %v, want *client.Error", err, err)
			}
			if ce.Status != tt.status || ce.Message != `bottle "x" is not known` || err.Error() != ce.Message {
				t.Errorf("got status %d message %q (%q)", ce.Status, ce.Message, err)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.want)
			}
			if tt.want == nil && errors.Unwrap(err) != nil {
				t.Errorf("status %d unwraps to %v, want nil", tt.status, errors.Unwrap(err))
			}
		})
	}
}

func TestErrorWithoutJSONBody(t *testing.T) {
	srv := clienttest.NewServer(t)
	srv.HandleFunc("GET /v1/status", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
	})
	_, err := client.New(srv.Socket, client.WithRetry(0)).Status(context.Background())
	if got, want := err.Error(), "the daemon answered 502 Bad Gateway"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// flaky answers 503 n times, then reply.
func flaky(n int32, calls *atomic.Int32, reply any) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		if calls.Add(1) <= n {
			clienttest.WriteJSON(w, 503, api.Error{Error: "store busy"})
			return
		}
		clienttest.WriteJSON(w, 200, reply)
	}
}

func fastRetry(d time.Duration) []client.Option {
	return []client.Option{client.WithRetry(d), client.WithBackoff(time.Millisecond, 5*time.Millisecond)}
}

func TestRetry503ThenSuccess(t *testing.T) {
	srv := clienttest.NewServer(t)
	var calls atomic.Int32
	srv.HandleFunc("POST /v1/usage", flaky(2, &calls, api.IngestReply{Accepted: 1}))
	got, err := client.New(srv.Socket, fastRetry(time.Second)...).Ingest(context.Background(), []api.Report{report("a", 1, 1)})
	if err != nil {
		t.Fatal(err)
	}
	if got.Accepted != 1 || calls.Load() != 3 {
		t.Errorf("got accepted %d after %d calls, want 1 after 3", got.Accepted, calls.Load())
	}
}

func TestRetry503GivesUp(t *testing.T) {
	srv := clienttest.NewServer(t)
	var calls atomic.Int32
	srv.HandleFunc("GET /v1/status", flaky(1000, &calls, nil))
	start := time.Now()
	_, err := client.New(srv.Socket, fastRetry(50*time.Millisecond)...).Status(context.Background())
	if !errors.Is(err, budget.ErrUnavailable) {
		t.Fatalf("got %v, want ErrUnavailable", err)
	}
	if el := time.Since(start); el > 2*time.Second || calls.Load() < 2 {
		t.Errorf("gave up after %v and %d calls", el, calls.Load())
	}
}

func TestActNotRetriedAfterSend(t *testing.T) {
	srv := clienttest.NewServer(t)
	var calls atomic.Int32
	srv.HandleFunc("POST /v1/bottles/{slug}/actions", flaky(1, &calls, api.Action{ID: 1}))
	_, err := client.New(srv.Socket, fastRetry(time.Second)...).Act(context.Background(), "dev-1", api.ActionRequest{Action: "kill"})
	if !errors.Is(err, budget.ErrUnavailable) || calls.Load() != 1 {
		t.Errorf("got %v after %d calls, want ErrUnavailable after 1", err, calls.Load())
	}
}

// shortDir is a temporary directory with a path short enough for sockets.
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "bc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

func TestDaemonDownNoSocket(t *testing.T) {
	sock := filepath.Join(shortDir(t), "run", "bottlecap.sock")
	_, err := client.New(sock, client.WithRetry(0)).Status(context.Background())
	checkDown(t, err, sock, syscall.ENOENT)
	want := "cannot reach the bottlecap daemon at " + sock + " (connect: no such file or directory): is it running? Start it with \"bottlecap serve\" (or \"make run\")."
	if err.Error() != want {
		t.Errorf("message:\n got %s\nwant %s", err, want)
	}
}

func TestDaemonDownStaleSocket(t *testing.T) {
	sock := filepath.Join(shortDir(t), "bottlecap.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false) // leave the file behind, as a crashed daemon does
	_ = ln.Close()
	_, err = client.New(sock, client.WithRetry(0)).Bottles(context.Background())
	checkDown(t, err, sock, syscall.ECONNREFUSED)
}

func checkDown(t *testing.T, err error, sock string, errno syscall.Errno) {
	t.Helper()
	if !errors.Is(err, client.ErrDaemonDown) || !errors.Is(err, errno) {
		t.Fatalf("got %v, want ErrDaemonDown and %v", err, errno)
	}
	var de *client.DialError
	if !errors.As(err, &de) || de.Socket != sock {
		t.Errorf("got %#v, want a *DialError naming %s", err, sock)
	}
	if msg := err.Error(); !strings.Contains(msg, sock) || !strings.Contains(msg, "bottlecap serve") {
		t.Errorf("message %q does not name the socket and how to start the daemon", msg)
	}
}

func TestDaemonComesUpDuringRetry(t *testing.T) {
	sock := filepath.Join(shortDir(t), "bottlecap.sock")
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		clienttest.WriteJSON(w, 202, api.Action{ID: 9})
	})}
	t.Cleanup(func() { _ = srv.Close() })
	go func() {
		time.Sleep(30 * time.Millisecond)
		ln, err := net.Listen("unix", sock)
		if err != nil {
			t.Error(err)
			return
		}
		_ = srv.Serve(ln)
	}()
	got, err := client.New(sock, fastRetry(5*time.Second)...).Act(context.Background(), "dev-1", api.ActionRequest{Action: "cutoff"})
	if err != nil || got.ID != 9 {
		t.Errorf("got %+v, %v; want action 9", got, err)
	}
}

func TestRetryStopsOnContext(t *testing.T) {
	sock := filepath.Join(shortDir(t), "bottlecap.sock")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := client.New(sock, fastRetry(time.Minute)...).Status(ctx)
	if !errors.Is(err, client.ErrDaemonDown) || time.Since(start) > 5*time.Second {
		t.Errorf("got %v after %v", err, time.Since(start))
	}
}

func TestSocketPathTooLong(t *testing.T) {
	sock := "/tmp/" + strings.Repeat("x", 120) + "/bottlecap.sock"
	_, err := client.New(sock, client.WithRetry(0)).Status(context.Background())
	if err == nil || !strings.Contains(err.Error(), "longer than a unix socket address can hold") || !strings.Contains(err.Error(), sock) {
		t.Errorf("got %v", err)
	}
}

// dropFirst closes the connection without answering the first n requests,
// as a daemon that crashes mid-request does, then replies.
func dropFirst(n int32, calls *atomic.Int32, status int, reply any) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		if calls.Add(1) <= n {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				_ = conn.Close()
			}
			return
		}
		clienttest.WriteJSON(w, status, reply)
	}
}

func TestBrokenConnectionRetriedWhenIdempotent(t *testing.T) {
	srv := clienttest.NewServer(t)
	var calls atomic.Int32
	srv.HandleFunc("POST /v1/usage", dropFirst(1, &calls, 200, api.IngestReply{Accepted: 1}))
	got, err := client.New(srv.Socket, fastRetry(time.Second)...).Ingest(context.Background(), []api.Report{report("a", 1, 1)})
	if err != nil || got.Accepted != 1 {
		t.Errorf("got %+v, %v after %d calls; want accepted", got, err, calls.Load())
	}
}

func TestBrokenConnectionNotRetriedForActions(t *testing.T) {
	srv := clienttest.NewServer(t)
	var calls atomic.Int32
	srv.HandleFunc("POST /v1/bottles/{slug}/actions", dropFirst(1, &calls, 202, api.Action{ID: 1}))
	_, err := client.New(srv.Socket, fastRetry(time.Second)...).Act(context.Background(), "dev-1", api.ActionRequest{Action: "kill"})
	if err == nil || calls.Load() != 1 || errors.Is(err, client.ErrDaemonDown) {
		t.Errorf("got %v after %d calls; want one call and a connection error", err, calls.Load())
	}
	if !strings.Contains(err.Error(), srv.Socket) {
		t.Errorf("error %q does not name the socket", err)
	}
}
