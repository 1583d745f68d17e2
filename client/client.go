package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/internal/retry"
)

// baseURL is the scheme and host of every request; the host is a label, the
// connection always goes to the socket.
const baseURL = "http://bottlecap"

// Defaults of the options below.
const (
	DefaultTimeout    = 30 * time.Second
	DefaultRetryFor   = 5 * time.Second
	DefaultBackoff    = 50 * time.Millisecond
	DefaultMaxBackoff = 1 * time.Second
)

// Client talks to one daemon over its unix socket. It is safe for concurrent
// use and keeps connections alive between calls, so one Client should be
// shared by a process.
type Client struct {
	socket     string
	http       *http.Client // calls, with an overall timeout
	stream     *http.Client // the event stream, bounded only by its context
	retryFor   time.Duration
	backoff    time.Duration
	maxBackoff time.Duration
}

// Option tunes a Client.
type Option func(*Client)

// WithTimeout bounds each call (not the event stream) from dial to the last
// byte of the reply. Retries each get the full timeout.
func WithTimeout(d time.Duration) Option {
	return func(c *Client) { c.http.Timeout = d }
}

// WithRetry bounds how long a call keeps retrying while the daemon is down
// or answers 503 (the store is busy). Zero disables retries; tests and
// interactive commands use small values, sidecars larger ones.
func WithRetry(d time.Duration) Option {
	return func(c *Client) { c.retryFor = d }
}

// WithBackoff sets the first wait between retries and its cap; each wait
// doubles up to the cap.
func WithBackoff(first, limit time.Duration) Option {
	return func(c *Client) { c.backoff, c.maxBackoff = first, max(first, limit) }
}

// New returns a Client for the daemon listening on socketPath. It does not
// connect: the first call does, and says so if nobody listens.
func New(socketPath string, opts ...Option) *Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	tr := &transport{
		maxIdle: 64, // the benchmarks run 64 concurrent callers
		dial: func(ctx context.Context) (net.Conn, error) {
			conn, err := d.DialContext(ctx, "unix", socketPath)
			if err != nil {
				return nil, &DialError{Socket: socketPath, Err: err}
			}
			return conn, nil
		},
	}
	c := &Client{
		socket:     socketPath,
		http:       &http.Client{Transport: tr, Timeout: DefaultTimeout},
		stream:     &http.Client{Transport: tr},
		retryFor:   DefaultRetryFor,
		backoff:    DefaultBackoff,
		maxBackoff: DefaultMaxBackoff,
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Socket is the path this client dials, for messages.
func (c *Client) Socket() string { return c.socket }

// Close releases idle connections.
func (c *Client) Close() error {
	c.http.CloseIdleConnections()
	return nil
}

// retryMode says which failures a request may be retried after.
type retryMode int

const (
	// retryIdempotent retries dial failures, broken connections and 503
	// replies: the request may have been sent, but repeating it is harmless.
	retryIdempotent retryMode = iota
	// retryDialOnly retries only when nothing was sent.
	retryDialOnly
)

// request is one call: route, query, body and how it may be retried.
type request struct {
	method      string
	path        string // escaped, under baseURL
	query       url.Values
	body        []byte
	contentType string
	retry       retryMode
}

// jsonRequest builds a request whose body is v as JSON.
func jsonRequest(method, path string, v any) (request, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return request{}, fmt.Errorf("encode %s %s: %w", method, path, err)
	}
	return request{method: method, path: path, body: b, contentType: "application/json"}, nil
}

// do sends r and decodes a 2xx JSON reply into out (unless out is nil).
func (c *Client) do(ctx context.Context, r request, out any) error {
	resp, err := c.send(ctx, c.http, r)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body) // let the connection be reused
		return nil
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("read the reply to %s %s: %w", r.method, r.path, err)
	}
	if err := decodeReply(b, out); err != nil {
		return fmt.Errorf("decode the reply to %s %s: %w", r.method, r.path, err)
	}
	return nil
}

// decodeReply decodes a reply body into out: the answers every sidecar
// reads on each report and gate question by hand when they have their
// usual plain shape (see api.DecodeReportFast), the rest with encoding/json.
func decodeReply(b []byte, out any) error {
	switch v := out.(type) {
	case *api.IngestReply:
		if api.DecodeIngestReplyFast(b, v) {
			return nil
		}
		*v = api.IngestReply{}
	case *budget.Verdict:
		if api.DecodeVerdictFast(b, v) {
			return nil
		}
		*v = budget.Verdict{}
	}
	return json.Unmarshal(b, out)
}

// send makes attempts until one succeeds, fails for good, or the retry
// budget is spent. A successful reply's body is the caller's to close.
func (c *Client) send(ctx context.Context, hc *http.Client, r request) (*http.Response, error) {
	stop := time.Now().Add(c.retryFor)
	backoff := retry.Backoff{Base: c.backoff, Max: c.maxBackoff}
	var last error
	for n := 1; ; n++ {
		resp, err := c.attempt(ctx, hc, r)
		if err != nil && last != nil && ended(ctx) {
			return nil, last // why we were retrying says more than "context canceled"
		}
		if err == nil || !r.retryable(err) {
			return resp, err
		}
		last = err
		left := time.Until(stop)
		if left <= 0 || retry.Sleep(ctx, min(backoff.Ceiling(n), left)) != nil {
			return nil, err
		}
	}
}

// ended reports whether ctx is done or its deadline has passed: a dial
// bounded by the deadline can fail a moment before ctx itself says so.
func ended(ctx context.Context) bool {
	d, ok := ctx.Deadline()
	return ctx.Err() != nil || (ok && !time.Now().Before(d))
}

// retryable reports whether r may be tried again after err.
func (r request) retryable(err error) bool {
	var de *DialError
	if errors.As(err, &de) {
		return de.transient()
	}
	if r.retry != retryIdempotent {
		return false
	}
	var ce *connError
	return errors.Is(err, budget.ErrUnavailable) ||
		(errors.As(err, &ce) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled))
}

// connError is a connection that failed after it was made (the daemon
// restarted or crashed mid-request): the request may have been sent.
type connError struct{ err error }

func (e *connError) Error() string { return e.err.Error() }
func (e *connError) Unwrap() error { return e.err }

// attempt sends r once. A non-2xx reply becomes an *Error; a connection
// failure a *DialError (nothing sent) or a wrapped transport error.
func (c *Client) attempt(ctx context.Context, hc *http.Client, r request) (*http.Response, error) {
	u := baseURL + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", r.method, r.path, err)
	}
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	req.Header.Set("User-Agent", "bottlecap-client")
	if r.retry == retryIdempotent && r.method == http.MethodPost {
		// Marks the POST as idempotent (ingest is, by report id) so that
		// net/http retries it on a kept-alive connection the daemon closed
		// by restarting; a nil value is not sent.
		req.Header["Idempotency-Key"] = nil
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, c.transportError(r, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody)) // a short read still gives the status
		return nil, replyError(resp.StatusCode, b)
	}
	return resp, nil
}

// transportError strips net/http's wrapping from a dial failure (which
// already names the socket) and names the socket and route otherwise.
func (c *Client) transportError(r request, err error) error {
	var de *DialError
	if errors.As(err, &de) {
		return de
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return &connError{fmt.Errorf("bottlecap daemon at %s: %s %s: %w", c.socket, r.method, r.path, err)}
}
