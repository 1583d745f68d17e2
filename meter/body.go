package meter

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"sync"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/meter/usage"
)

// meteredBody passes a response body through unchanged while teeing it
// into a usage parser, and queues the report when the body is closed —
// after the last byte was passed on, or when the stream broke off or the
// client went away, with what was seen.
type meteredBody struct {
	rc     io.ReadCloser
	parser *usage.Parser
	// sink is where the passing bytes go: the parser itself, or a decoder
	// in front of it when the upstream encoded the body.
	sink   io.Writer
	once   sync.Once
	report func(usage.Result)
}

// meterBody wraps resp's body for the exchange ex; codings are the
// body's content codings, decoded for the parser only.
func (p *Proxy) meterBody(resp *http.Response, ex *exchange, codings []string) io.ReadCloser {
	h := resp.Header
	b := &meteredBody{rc: resp.Body, parser: usage.NewParser(usage.Format(ex.ep.Format), "")}
	b.sink = b.parser
	if len(codings) > 0 {
		b.sink = newDecodingWriter(codings, b.parser)
	}
	b.report = func(res usage.Result) { p.queue.add(p.newReport(ex.up, res, h)) }
	return b
}

// Read passes the bytes on and feeds them to the parser (which never fails).
func (b *meteredBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if n > 0 {
		b.sink.Write(p[:n])
	}
	return n, err
}

// Close closes the upstream body and reports, once, after the decoder (if
// any) has handed the parser everything.
func (b *meteredBody) Close() error {
	err := b.rc.Close()
	b.once.Do(func() {
		if c, ok := b.sink.(io.Closer); ok {
			c.Close()
		}
		b.report(b.parser.Result())
	})
	return err
}

// newReport is the report of one response: the provider's response id as
// the idempotency key, the parser's counts and completeness.
func (p *Proxy) newReport(up *upstream, res usage.Result, h http.Header) api.Report {
	id := res.ID
	if id == "" {
		id = fallbackID(up.Provider, h)
	}
	complete := res.Complete
	return api.Report{
		Report: budget.Report{
			ID: id, Bottle: p.cfg.Bottle, Agent: p.cfg.Agent, Provider: up.Provider,
			Host: up.URL.Hostname(), Model: res.Model, Usage: res.Usage, TS: p.cfg.Now().UTC(),
		},
		Complete: &complete,
	}
}

// fallbackID is the report id of a response whose body names none: the
// provider's request id header (unique per response), else a random id.
// It is fixed when the report is queued, so its retries keep it.
func fallbackID(provider string, h http.Header) string {
	for _, k := range []string{"Request-Id", "X-Request-Id", "X-Goog-Request-Id"} {
		if v := h.Get(k); v != "" && len(v) <= 200 {
			return provider + "-req-" + v
		}
	}
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return "meter-" + hex.EncodeToString(b[:])
}
