// Package clienttest runs a fake bottlecap daemon on a real unix socket, so
// the client and the commands built on it are tested over the same
// transport as in production, without the real daemon.
package clienttest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// Request is one request the fake daemon received.
type Request struct {
	Method      string
	Path        string // escaped path
	Query       string // raw query
	ContentType string
	Body        []byte
}

// Server is a fake daemon: routes answer canned replies (or run handlers)
// and every request is recorded.
type Server struct {
	// Socket is the path the fake daemon listens on.
	Socket string

	mux  *http.ServeMux
	mu   sync.Mutex
	reqs []Request
}

// NewServer starts a fake daemon on a socket in a short temporary directory
// (unix socket paths are limited to about 108 bytes, which t.TempDir can
// exceed) and stops it when the test ends.
func NewServer(t testing.TB) *Server {
	t.Helper()
	dir, err := os.MkdirTemp("", "bc")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Socket: filepath.Join(dir, "bottlecap.sock"), mux: http.NewServeMux()}
	ln, err := net.Listen("unix", s.Socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(s.serve)}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("fake daemon: %v", err)
		}
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		_ = os.RemoveAll(dir)
	})
	return s
}

// serve records the request, then routes it.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.reqs = append(s.reqs, Request{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Get("Content-Type"), body})
	s.mu.Unlock()
	r.Body = io.NopCloser(bytes.NewReader(body))
	s.mux.ServeHTTP(w, r)
}

// HandleFunc routes a net/http pattern ("GET /v1/bottles/{slug}") to h.
func (s *Server) HandleFunc(pattern string, h http.HandlerFunc) {
	s.mux.HandleFunc(pattern, h)
}

// Reply routes a pattern to a fixed reply: status and v as JSON (no body
// when v is nil).
func (s *Server) Reply(pattern string, status int, v any) {
	s.HandleFunc(pattern, func(w http.ResponseWriter, _ *http.Request) {
		WriteJSON(w, status, v)
	})
}

// Fail routes a pattern to an error reply {"error": msg}.
func (s *Server) Fail(pattern string, status int, msg string) {
	s.Reply(pattern, status, map[string]string{"error": msg})
}

// Requests returns every request received so far, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.reqs...)
}

// Last returns the latest request, or a zero Request when there was none.
func (s *Server) Last() Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.reqs) == 0 {
		return Request{}
	}
	return s.reqs[len(s.reqs)-1]
}

// WriteJSON writes status and v as JSON (no body when v is nil).
func WriteJSON(w http.ResponseWriter, status int, v any) {
	if v == nil {
		w.WriteHeader(status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
