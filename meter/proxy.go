// Package meter is the egress side of bottlecap (SPEC section 9): a reverse
// proxy in front of the LLM provider APIs that asks the budget daemon's
// gate before each request, streams the response through unbuffered while
// reading its usage as it passes, and reports that usage to the daemon
// exactly once, whatever happens to the daemon in between.
package meter

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync/atomic"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/client"
	"github.com/bot-bottle/bottlecap/internal/copybuf"
	"github.com/bot-bottle/bottlecap/meter/estimate"
	"github.com/bot-bottle/bottlecap/meter/usage"
)

// Proxy is the metering reverse proxy. It is an http.Handler; one Proxy
// serves every agent request of one bottle.
type Proxy struct {
	cfg       Config
	log       *slog.Logger
	upstreams []*upstream
	fallback  *upstream
	ownClient *client.Client // dialled from cfg.Socket; closed by Close
	rp        *httputil.ReverseProxy
	queue     *queue
	verdicts  *verdictCache
	pools     []*pool // one per provider, unless naive
	estimator *estimate.Estimator
	sockets   socketSet
	flights   flightSet
	stopWatch func() // ends the watch of the bottle's state
	closed    atomic.Bool
}

// daemonTimeout bounds one call of the daemon client the proxy dials
// itself; the gate's questions are bounded by Config.GateTimeout.
const daemonTimeout = 10 * time.Second

// New builds a proxy from cfg and starts its report queue (replaying the
// spool, when cfg.SpoolPath names one), dialling cfg.Socket when
// cfg.Daemon is nil. Close it to drain the queue.
func New(cfg Config) (*Proxy, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	p := &Proxy{cfg: cfg, log: cfg.Log, verdicts: newVerdictCache(cfg.GateCache), estimator: estimate.New()}
	if p.upstreams, err = cfg.upstreams(); err != nil {
		return nil, err
	}
	if p.fallback = fallbackOf(p.upstreams); p.fallback == nil {
		return nil, fmt.Errorf("%w: meter: the provider table names no fallback API", budget.ErrInvalid)
	}
	if p.cfg.Daemon == nil {
		p.ownClient = client.New(cfg.Socket, client.WithRetry(0), client.WithTimeout(daemonTimeout))
		p.cfg.Daemon = p.ownClient
	}
	if p.queue, err = newQueue(p.cfg.Daemon, cfg.SpoolPath, cfg.QueueLimit, cfg.Log, p.noteVerdicts); err != nil {
		p.closeClient()
		return nil, err
	}
	if !cfg.Naive {
		p.startPools()
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.upstreamError,
		Transport:      cfg.Transport,
		FlushInterval:  -1, // flush after every write: streams pass unbuffered
		BufferPool:     copybuf.Pool{},
		ErrorLog:       log.New(slogWriter{cfg.Log}, "", 0),
	}
	p.stopWatch = func() {}
	if !cfg.Naive {
		// The naive mode is the soft cap of before, kept for comparison:
		// it neither reserves nor cuts a stream mid-flight.
		p.stopWatch = p.startWatch()
	}
	return p, nil
}

// fallbackOf is the upstream of the table's fallback API, which requests
// nothing else names go to.
func fallbackOf(ups []*upstream) *upstream {
	for _, up := range ups {
		if up.api.Fallback {
			return up
		}
	}
	return nil
}

// startPools gives each provider an allowance pool, shared by its
// upstreams.
func (p *Proxy) startPools() {
	byProvider := map[string]*pool{}
	for _, up := range p.upstreams {
		pl, ok := byProvider[up.Provider]
		if !ok {
			pl = newPool(up.Provider, p)
			byProvider[up.Provider] = pl
			p.pools = append(p.pools, pl)
		}
		up.pool = pl
	}
}

// exchange is what the proxy knows about one request on its way through:
// its upstream, for a metered call the endpoint it calls, and what its
// allowance set aside for it (nil in naive mode).
type exchange struct {
	up     *upstream
	ep     *budget.Endpoint // nil: not metered
	flight *flight          // nil: not metered
	spend  *spend           // nil: naive, or not metered
}

type exchangeKey struct{}

// ServeHTTP gates a metered request, adds include_usage to OpenAI Chat
// streams, and forwards it under the table's spelling of its call
// (paths.go); refuses a call that spends tokens the meter cannot count
// (unmetered.go), a request to a metered endpoint that is not a POST but
// could still generate, and a metered call that asks for an answer the
// meter cannot read (shape.go); every other request under the provider
// paths is forwarded as it is. Of the protocol upgrades only the OpenAI
// Responses WebSocket is taken (and metered message by message); any other
// WebSocket is refused with 426, so that nothing passes unmetered, and an
// offer to switch to anything else (h2c) is declined by ignoring it.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t := p.route(r)
	up, ep := t.up, t.ep
	switch {
	case isUpgrade(r) && !isWebSocket(r):
		ignoreUpgrade(r) // served over HTTP/1.1, metered like any request
	case isUpgrade(r) && !meteredUpgrade(r, ep):
		refuseUpgrade(w, up, r)
		return
	case isUpgrade(r):
		p.callAsMetered(r, t)
		p.serveSocket(w, r, up, ep)
		return
	}
	ep, ok := p.screen(w, r, t)
	if !ok {
		return
	}
	ex := &exchange{up: up, ep: ep}
	if ep != nil && !p.admitExchange(w, r, ex) {
		return
	}
	p.forward(w, r, ex)
	ex.spend.finish(budget.Usage{}) // no metered body reported it: refused, an error, or the upstream said no
}

// admitExchange admits a metered request: against its allowance, or in
// naive mode on the cached gate. It answers the requests it refuses and
// reports whether to forward.
func (p *Proxy) admitExchange(w http.ResponseWriter, r *http.Request, ex *exchange) bool {
	if !p.cfg.Naive {
		ex.spend = p.reserve(w, r, ex.up, ex.ep)
		return ex.spend != nil
	}
	if !p.admit(w, r, ex.up) {
		return false
	}
	if usage.Format(ex.ep.Format) == usage.OpenAIChat {
		if err := includeUsage(r); err != nil {
			writeError(w, ex.up, http.StatusBadRequest, "", "bottlecap meter: "+err.Error())
			return false
		}
	}
	return true
}

// forward passes the request upstream through the reverse proxy. A
// metered exchange flies as a flight for its lifetime, so that a cut can
// end it: the cut cancels the outgoing request (closing the upstream
// connection) and the response ends with the provider-shaped error.
func (p *Proxy) forward(w http.ResponseWriter, r *http.Request, ex *exchange) {
	ctx, cancel := context.WithCancelCause(context.WithValue(r.Context(), exchangeKey{}, ex))
	defer cancel(nil)
	if ex.ep != nil {
		f, ref := p.flights.begin(ex.up, func(refusal) { cancel(errCut) })
		if ref != nil {
			refuse(w, ex.up, *ref)
			return
		}
		defer p.flights.end(f)
		ex.flight = f
	}
	p.rp.ServeHTTP(w, r.WithContext(ctx))
}

// rewrite points the outgoing request at the upstream. Metered requests ask
// for an unencoded body, since the usage parser reads the bytes as they
// pass; nothing else is changed (no X-Forwarded-* headers are added).
func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	ex := pr.In.Context().Value(exchangeKey{}).(*exchange)
	pr.SetURL(ex.up.URL)
	if ex.ep != nil {
		pr.Out.Header.Set("Accept-Encoding", "identity")
	}
	if pr.Out.Body != nil && pr.Out.ContentLength > 0 {
		pr.Out.Body = &declaredBody{ReadCloser: pr.Out.Body, left: pr.Out.ContentLength}
	}
}

// declaredBody ends an outgoing request body at its declared length
// without reading the inbound body again. http.Transport, having copied
// Content-Length bytes, reads once more to check that the body is not
// longer. By then the upstream may have answered and the proxy written the
// response header, which makes the HTTP/1 server drain and close the
// inbound body (net/http, chunkWriter.writeHeader): that extra read would
// fail with "invalid Read on closed Body", the Transport would close the
// upstream connection, and a streaming response would be cut off mid-way.
// The server already limits the inbound body to its Content-Length, so it
// can never be longer.
type declaredBody struct {
	io.ReadCloser
	left int64
}

func (b *declaredBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}

// modifyResponse tees a metered 2xx response body into a usage parser,
// which reports when the body is closed. An upstream may encode the body
// despite Accept-Encoding: identity; the client still gets its bytes as
// they are, and the parser reads them decoded (gzip, deflate, br, zstd).
func (p *Proxy) modifyResponse(resp *http.Response) error {
	ex := resp.Request.Context().Value(exchangeKey{}).(*exchange)
	if ex.ep == nil || resp.StatusCode/100 != 2 {
		return nil
	}
	ce := strings.Join(resp.Header.Values("Content-Encoding"), ",")
	codings, ok := contentEncodings(ce)
	if !ok {
		p.log.Warn("upstream encoded a metered response in a coding the meter cannot read; usage will be missing",
			"provider", ex.up.Provider, "encoding", ce)
	}
	resp.Body = p.meterBody(resp, ex, codings)
	return nil
}

// upstreamError answers a request the upstream could not be reached for,
// in the provider's error shape.
func (p *Proxy) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	ex := r.Context().Value(exchangeKey{}).(*exchange)
	if why := ex.flight.cutBy(); why != nil {
		p.reportUnanswered(ex) // cut before the response began
		refuse(w, ex.up, *why)
		return
	}
	if r.Context().Err() != nil {
		return // the client left; nobody to answer
	}
	p.log.Warn("upstream unreachable", "provider", ex.up.Provider, "host", ex.up.URL.Host, "err", err.Error())
	writeError(w, ex.up, http.StatusBadGateway, budget.RefuseUnreachable, fmt.Sprintf("bottlecap meter: upstream %s unreachable", ex.up.URL.Host))
}

// noteVerdicts takes the verdicts of an ingest acknowledgement: a report
// that exhausted this bottle's budget ends the reuse of "allowed" at once,
// and a bottle that may not spend at all (cut off, frozen, killed, an
// action pending) has its pools ask the daemon before admitting anything.
func (p *Proxy) noteVerdicts(vs []budget.Verdict) {
	for _, v := range vs {
		if v.Bottle != p.cfg.Bottle {
			continue
		}
		if !v.Allowed {
			p.verdicts.note(v.Provider, v)
		}
		if v.State.Blocked() {
			p.blockPools(v.Provider)
		}
	}
}

// blockPools makes provider's pools stop serving from what they hold.
func (p *Proxy) blockPools(provider string) {
	for _, up := range p.upstreams {
		if up.Provider == provider && up.pool != nil {
			up.pool.block()
		}
	}
}

// Pending is the number of usage reports not yet acknowledged by the
// daemon, for health checks and tests.
func (p *Proxy) Pending() int { return p.queue.len() }

// Close stops reporting: it gives the queue until ctx ends to deliver what
// it holds, and returns an error naming how many reports were left (kept in
// the spool for the next start, when there is one), and closes the daemon
// client New dialled. Stop serving requests before calling it; metered
// exchanges still in flight are cut (the client gets a 503 error event)
// and WebSocket sessions still open are closed (1001), their unfinished
// responses reported first.
func (p *Proxy) Close(ctx context.Context) error {
	if p.closed.Swap(true) {
		return nil
	}
	p.stopWatch()
	// Their unfinished responses are queued before the queue drains.
	p.flights.close(ctx, shutdownRefusal)
	p.sockets.close()
	left := p.queue.close(ctx)
	for _, pl := range p.pools {
		pl.close() // after the queue: the reports that name an allowance settle it first
	}
	p.closeClient()
	if left == 0 {
		return nil
	}
	if p.cfg.SpoolPath != "" {
		return fmt.Errorf("%d usage reports not acknowledged yet; kept in %s for the next start", left, p.cfg.SpoolPath)
	}
	return fmt.Errorf("%d usage reports not acknowledged by the daemon were lost (no --queue spool)", left)
}

// closeClient closes the daemon client the proxy dialled itself, if any.
func (p *Proxy) closeClient() {
	if p.ownClient != nil {
		p.ownClient.Close()
	}
}

// slogWriter turns the reverse proxy's log lines into warnings.
type slogWriter struct{ log *slog.Logger }

func (w slogWriter) Write(b []byte) (int, error) {
	w.log.Warn(strings.TrimSpace(string(b)))
	return len(b), nil
}
