package client

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"
)

// transport is an http.RoundTripper for one unix socket that does each
// round trip on the caller's goroutine over a pooled keep-alive connection.
// net/http's Transport hands every request to two goroutines of the
// connection and back; on the gate's hot path (a verdict is a tiny GET)
// those handoffs are most of a call's tail latency (make bench:
// verdict_p99_us). It speaks HTTP/1.1 with net/http's own request writer
// and response reader.
type transport struct {
	dial    func(ctx context.Context) (net.Conn, error)
	maxIdle int

	mu   sync.Mutex
	idle []*pconn
}

// pconn is one pooled connection with its buffers.
type pconn struct {
	conn net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
}

// RoundTrip implements http.RoundTripper. A request on a reused connection
// that fails before any reply arrives is sent once more on a fresh one when
// that is safe: the daemon may have closed the idle connection by
// restarting.
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	pc, reused, err := t.get(req.Context())
	if err != nil {
		return nil, err
	}
	resp, err := t.exchange(req, pc)
	if err != nil && reused && replayable(req) && staleConn(err) {
		if req.GetBody != nil {
			if req.Body, err = req.GetBody(); err != nil {
				return nil, err
			}
		}
		if pc, err = t.dialConn(req.Context()); err != nil {
			return nil, err
		}
		resp, err = t.exchange(req, pc)
	}
	return resp, err
}

// exchange writes the request and reads the reply's header; the body
// gives the connection back to the pool once read to the end and closed.
// The request's context ends the exchange by expiring the connection's
// deadline, which also ends a long event stream.
func (t *transport) exchange(req *http.Request, pc *pconn) (*http.Response, error) {
	stop := context.AfterFunc(req.Context(), func() { pc.conn.SetDeadline(time.Unix(1, 0)) })
	fail := func(err error) (*http.Response, error) {
		stop()
		pc.conn.Close()
		if ctxErr := req.Context().Err(); ctxErr != nil {
			return nil, ctxErr
		}
		return nil, err
	}
	if err := req.Write(pc.bw); err != nil {
		return fail(err)
	}
	if err := pc.bw.Flush(); err != nil {
		return fail(err)
	}
	resp, err := http.ReadResponse(pc.br, req)
	if err != nil {
		return fail(err)
	}
	resp.Body = &body{ReadCloser: resp.Body, t: t, pc: pc, stop: stop, keep: !resp.Close}
	return resp, nil
}

// get returns an idle connection, or dials one.
func (t *transport) get(ctx context.Context) (*pconn, bool, error) {
	t.mu.Lock()
	if n := len(t.idle); n > 0 {
		pc := t.idle[n-1]
		t.idle = t.idle[:n-1]
		t.mu.Unlock()
		return pc, true, nil
	}
	t.mu.Unlock()
	pc, err := t.dialConn(ctx)
	return pc, false, err
}

func (t *transport) dialConn(ctx context.Context) (*pconn, error) {
	c, err := t.dial(ctx)
	if err != nil {
		return nil, err
	}
	return &pconn{conn: c, br: bufio.NewReader(c), bw: bufio.NewWriter(c)}, nil
}

// put gives a healthy connection back to the pool, or closes it when the
// pool is full.
func (t *transport) put(pc *pconn) {
	t.mu.Lock()
	if len(t.idle) < t.maxIdle {
		t.idle = append(t.idle, pc)
		pc = nil
	}
	t.mu.Unlock()
	if pc != nil {
		pc.conn.Close()
	}
}

// CloseIdleConnections closes every pooled connection; http.Client calls
// it from its own CloseIdleConnections.
func (t *transport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	t.mu.Unlock()
	for _, pc := range idle {
		pc.conn.Close()
	}
}

// body gives the connection back when the reply has been read to its end.
type body struct {
	io.ReadCloser
	t    *transport
	pc   *pconn
	stop func() bool
	keep bool
	eof  bool
	once sync.Once
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

// Close keeps the connection only if the reply was read to the end and the
// request's context had not already expired its deadline.
func (b *body) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(func() {
		if b.stop() && b.keep && b.eof {
			b.t.put(b.pc)
			return
		}
		b.pc.conn.Close()
	})
	return err
}

// replayable reports whether sending req twice is harmless: reads, PUT and
// DELETE, and POSTs marked idempotent (ingest, by report id).
func replayable(req *http.Request) bool {
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return false
	}
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete:
		return true
	}
	_, ok := req.Header["Idempotency-Key"]
	return ok
}

// staleConn reports whether err is a kept-alive connection the daemon had
// closed, found on first use.
func staleConn(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)
}
