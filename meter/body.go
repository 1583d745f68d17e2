package meter

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"sync"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/meter/estimate"
	"github.com/bot-bottle/bottlecap/meter/usage"
)

// meteredBody passes a response body through unchanged while teeing it
// into a usage parser, and queues the report when the body is closed —
// after the last byte was passed on, or when the stream broke off, the
// client went away or the meter cut it, with what was seen.
//
// An event stream is passed on in whole events (what an SSE client acts
// on anyway), so that a cut can end it with an error event of its own
// rather than inside a half-sent one.
type meteredBody struct {
	rc     io.ReadCloser
	parser *usage.Parser
	// sink is where the passing bytes go: the parser itself, or a decoder
	// in front of it when the upstream encoded the body.
	sink   io.Writer
	once   sync.Once
	report func(usage.Result)

	up     *upstream
	format usage.Format
	flight *flight
	events bool   // an SSE body, passed in whole events
	held   []byte // read, not yet passed: the start of an unfinished event
	mid    bool   // the client has part of an event (one larger than a read)
	ending io.Reader

	// spend is what the request's allowance set aside (nil in naive
	// mode), against which the output is counted as it passes.
	spend     *spend
	estimator *estimate.Estimator
}

// meterBody wraps resp's body for the exchange ex; codings are the
// body's content codings, decoded for the parser only.
func (p *Proxy) meterBody(resp *http.Response, ex *exchange, codings []string) io.ReadCloser {
	h := resp.Header
	format := usage.Format(ex.ep.Format)
	b := &meteredBody{rc: resp.Body, parser: usage.NewParser(format, ""), up: ex.up, format: format, flight: ex.flight,
		events: isEventStream(h) && len(codings) == 0, spend: ex.spend, estimator: p.estimator}
	b.sink = b.parser
	if len(codings) > 0 {
		b.sink = newDecodingWriter(codings, b.parser)
	}
	b.report = func(res usage.Result) {
		r := p.newReport(ex.up, res, h)
		p.account(ex.up, ex.spend, res, &r)
		p.queue.add(r)
	}
	return b
}

// Read passes the bytes on and feeds them to the parser. Once the flight
// is cut it passes the ending instead: the provider-shaped error event of
// an event stream, nothing more of any other body. The cut is noticed
// before reading, or when the read it interrupted fails.
func (b *meteredBody) Read(p []byte) (int, error) {
	if why := b.flight.cutBy(); b.ending == nil && why != nil {
		b.end(*why)
	}
	if b.ending != nil {
		return b.ending.Read(p)
	}
	n, err := b.pass(p)
	if b.spend != nil {
		if why := b.spend.track(b.estimator, b.parser.DeltaBytes()); why != nil {
			b.flight.cut(*why) // what passed is counted; the next read ends the stream
		}
	}
	if why := b.flight.cutBy(); err != nil && err != io.EOF && why != nil {
		b.end(*why)
		if n == 0 {
			return b.ending.Read(p)
		}
		return n, nil
	}
	return n, err
}

// pass reads the next bytes of the body into p, feeding the parser, and
// returns those to pass on: for an event stream, only whole events (the
// rest is held for the next call) unless a single event fills p.
func (b *meteredBody) pass(p []byte) (int, error) {
	if !b.events {
		n, err := b.rc.Read(p)
		b.feed(p[:n])
		return n, err
	}
	n := copy(p, b.held)
	if n < len(b.held) {
		b.held, b.mid = b.held[:copy(b.held, b.held[n:])], true
		return n, nil
	}
	b.held = b.held[:0]
	for {
		m, err := b.rc.Read(p[n:])
		b.feed(p[n : n+m])
		n += m
		end := eventsEnd(p[:n])
		switch {
		case err == io.EOF:
			return n, err // the last bytes, whole or not
		case err != nil:
			return end, err // what the client cannot act on is dropped
		case end > 0:
			b.held, b.mid = append(b.held, p[end:n]...), false
			return end, nil
		case n == len(p):
			b.mid = true // one event larger than p passes in pieces
			return n, nil
		}
	}
}

// feed hands the parser the bytes read (it never fails).
func (b *meteredBody) feed(read []byte) {
	if len(read) > 0 {
		b.sink.Write(read)
	}
}

// end switches the body to its ending after a cut: an event stream gets
// the error event (after a blank line that closes an event the client has
// only part of), any other body simply ends.
func (b *meteredBody) end(why refusal) {
	b.held = nil
	if !b.events {
		b.ending = bytes.NewReader(nil)
		return
	}
	ev := cutEvent(b.up, b.format, why, b.parser.Result())
	if b.mid {
		ev = append([]byte("\n\n"), ev...)
	}
	b.ending = bytes.NewReader(ev)
}

// Close closes the upstream body and reports, once, after the decoder (if
// any) has handed the parser everything. A cut or broken stream is
// reported marked incomplete, never for less than what passed (see
// Proxy.account).
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
