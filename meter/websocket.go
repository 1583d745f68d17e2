package meter

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/meter/usage"
)

// maxClientMessage bounds one message a WebSocket client sends: the meter
// holds each one whole until the gate has answered, so a larger one closes
// the session (1009) rather than passing unread.
const maxClientMessage = 32 << 20

// isUpgrade reports whether r asks to switch protocols.
func isUpgrade(r *http.Request) bool {
	if r.Header.Get("Upgrade") != "" {
		return true
	}
	for _, v := range r.Header.Values("Connection") {
		for _, tok := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "upgrade") {
				return true
			}
		}
	}
	return false
}

// isWebSocket reports whether r's upgrade asks for a WebSocket.
func isWebSocket(r *http.Request) bool {
	return strings.EqualFold(strings.TrimSpace(r.Header.Get("Upgrade")), "websocket")
}

// ignoreUpgrade declines a non-WebSocket upgrade offer (h2c, say): a server
// may ignore Upgrade (RFC 9110 section 7.8), and the client then simply
// goes on over HTTP/1.1, which the meter reads. The reverse proxy would
// otherwise pass the switch upstream, unread.
func ignoreUpgrade(r *http.Request) {
	r.Header.Del("Upgrade")
	r.Header.Del("Http2-Settings")
	var keep []string
	for _, v := range r.Header.Values("Connection") {
		for _, tok := range strings.Split(v, ",") {
			if tok = strings.TrimSpace(tok); tok != "" && !strings.EqualFold(tok, "upgrade") && !strings.EqualFold(tok, "http2-settings") {
				keep = append(keep, tok)
			}
		}
	}
	r.Header.Del("Connection")
	if len(keep) > 0 {
		r.Header.Set("Connection", strings.Join(keep, ", "))
	}
}

// meteredUpgrade reports whether the meter can meter this upgrade: a
// WebSocket (a GET with Upgrade: websocket) to an endpoint the provider
// table meters over one, the OpenAI Responses WebSocket.
func meteredUpgrade(r *http.Request, ep *budget.Endpoint) bool {
	return ep != nil && ep.WebSocket && r.Method == http.MethodGet && isWebSocket(r)
}

// refuseUpgrade answers a WebSocket the meter cannot meter with 426, so
// the client falls back to plain HTTP, where it is metered; nothing is let
// through unread.
func refuseUpgrade(w http.ResponseWriter, up *upstream, r *http.Request) {
	w.Header().Set("X-Should-Retry", "false")
	writeError(w, up, http.StatusUpgradeRequired, budget.RefuseUpgrade, fmt.Sprintf(
		"bottlecap meter: %s %s cannot be metered over %q; use plain HTTP",
		r.Method, r.URL.Path, r.Header.Get("Upgrade")))
}

// serveSocket runs one metered WebSocket session (the OpenAI Responses
// WebSocket): it opens the same socket upstream, then passes frames both
// ways, gating each message the client sends and reading usage from the
// events the server sends, in ep's format.
func (p *Proxy) serveSocket(w http.ResponseWriter, r *http.Request, up *upstream, ep *budget.Endpoint) {
	resp, err := p.cfg.Transport.RoundTrip(upgradeRequest(r, up))
	if err != nil {
		p.upstreamError(w, r.WithContext(context.WithValue(r.Context(), exchangeKey{}, &exchange{up: up})), err)
		return
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		relayResponse(w, resp) // the upstream refused the handshake; the client learns why
		return
	}
	upConn, ok := resp.Body.(io.ReadWriteCloser)
	if !ok || resp.Header.Get("Sec-WebSocket-Extensions") != "" {
		resp.Body.Close()
		writeError(w, up, http.StatusBadGateway, budget.RefuseUnreachable,
			"bottlecap meter: the upstream WebSocket negotiated an extension the meter cannot read; use plain HTTP")
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		upConn.Close()
		writeError(w, up, http.StatusInternalServerError, "", "bottlecap meter: cannot take over the connection: "+err.Error())
		return
	}
	fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\n")
	resp.Header.Write(brw)
	brw.WriteString("\r\n")
	if err := brw.Flush(); err != nil {
		conn.Close()
		upConn.Close()
		return
	}
	s := &socketSession{p: p, up: up, format: usage.Format(ep.Format), client: conn, clientR: brw.Reader, upstream: upConn,
		upstreamR: bufio.NewReader(upConn), open: map[string]usage.Result{}, reported: map[string]bool{},
		flying: map[string]*flight{}}
	if !p.sockets.add(s) {
		s.fail(closeGoingAway, "the meter is shutting down")
		conn.Close()
		upConn.Close()
		return
	}
	defer p.sockets.done(s)
	s.run(r.Context())
}

// socketSet is the proxy's live WebSocket sessions: http.Server.Shutdown
// does not know hijacked connections, so Proxy.Close ends them itself and
// waits until each has queued its reports.
type socketSet struct {
	mu     sync.Mutex
	live   map[*socketSession]bool
	closed bool
	wg     sync.WaitGroup
}

// add registers a session, or reports false once the set is closed.
func (ss *socketSet) add(s *socketSession) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.closed {
		return false
	}
	if ss.live == nil {
		ss.live = map[*socketSession]bool{}
	}
	ss.live[s] = true
	ss.wg.Add(1)
	return true
}

// done unregisters a session that has ended and reported.
func (ss *socketSet) done(s *socketSession) {
	ss.mu.Lock()
	delete(ss.live, s)
	ss.mu.Unlock()
	ss.wg.Done()
}

// close ends every live session (1001, going away) and waits for them.
func (ss *socketSet) close() {
	ss.mu.Lock()
	ss.closed = true
	for s := range ss.live {
		s.fail(closeGoingAway, "the meter is shutting down")
		s.client.Close()
		s.upstream.Close()
	}
	ss.mu.Unlock()
	ss.wg.Wait()
}

// upgradeRequest is r pointed at the upstream, with the upgrade headers
// kept (they are hop-by-hop) and the extensions offer dropped, so that the
// frames stay plain and readable.
func upgradeRequest(r *http.Request, up *upstream) *http.Request {
	out := r.Clone(r.Context())
	out.RequestURI = ""
	(&httputil.ProxyRequest{In: r, Out: out}).SetURL(up.URL)
	for _, h := range []string{"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Sec-Websocket-Extensions"} {
		out.Header.Del(h)
	}
	out.Header.Set("Connection", "Upgrade")
	out.Header.Set("Upgrade", "websocket")
	return out
}

// relayResponse copies an upstream response to the client as it is.
func relayResponse(w http.ResponseWriter, resp *http.Response) {
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body) // the client may be gone; nothing to do
}

// socketSession is one metered WebSocket: the two connections, the lock
// that keeps the client's frames whole (the meter writes its own error
// events between the upstream's messages), and the responses seen.
type socketSession struct {
	p         *Proxy
	up        *upstream
	format    usage.Format // of the server's messages
	client    net.Conn
	clientR   *bufio.Reader
	upstream  io.ReadWriteCloser
	upstreamR *bufio.Reader

	clientMu sync.Mutex // held while a frame or message goes to the client
	upMu     sync.Mutex // held while a frame goes upstream

	mu       sync.Mutex
	open     map[string]usage.Result // created, not finished
	reported map[string]bool
	// The flights of the responses in flight: those asked for whose
	// response.created has not come yet, in order, and those named.
	asked  []*flight
	flying map[string]*flight
	// cutBy is why a flight of the session was cut, which ends the session.
	cutBy atomic.Pointer[refusal]
	// current is the response the server is streaming (one at a time), and
	// currentDelta the generated bytes its delta events carried, which
	// its own events do not repeat.
	current      string
	currentDelta int64
}

// run pumps both ways until either side ends, then closes both and reports
// the responses that never finished, as incomplete. A session ended by a
// cut tells the client why first.
func (s *socketSession) run(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	upDone, clientDone := make(chan bool, 1), make(chan struct{}, 1)
	go func() { upDone <- s.fromUpstream() }()
	go func() { s.fromClient(ctx); clientDone <- struct{}{} }()
	select {
	case midMessage := <-upDone:
		s.endCut(midMessage)
		s.closeBoth(cancel)
		<-clientDone
	case <-clientDone:
		s.closeBoth(cancel)
		<-upDone
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, res := range s.open {
		s.reportLocked(id, res)
	}
	for _, f := range s.asked {
		s.endFlight(f)
	}
	for _, f := range s.flying {
		s.endFlight(f)
	}
}

// endFlight ends a response's flight: whatever its allowance set aside
// and its report did not spend goes back.
func (s *socketSession) endFlight(f *flight) {
	f.spend.finish(budget.Usage{})
	s.p.flights.end(f)
}

// closeBoth ends both connections, and with them both pumps.
func (s *socketSession) closeBoth(cancel context.CancelFunc) {
	cancel()
	s.client.Close()
	s.upstream.Close()
}

// cut ends the session for one of its flights: closing the upstream
// stops the provider generating and ends the upstream pump, after which
// run sends the client the error event. The Responses WebSocket runs one
// response at a time, and a closed upstream cannot carry another, so the
// whole session ends.
func (s *socketSession) cut(why refusal) {
	if s.cutBy.CompareAndSwap(nil, &why) {
		s.upstream.Close()
	}
}

// endCut tells the client of a cut session why it ends: an error event
// for the response (unless the client was left inside a message, where
// no event can go), then a close frame — 1001 when the meter is shutting
// down, else 1008, the bottle's policy.
func (s *socketSession) endCut(midMessage bool) {
	why := s.cutBy.Load()
	if why == nil {
		return
	}
	if !midMessage {
		_ = s.writeEvent(deniedEvent(s.up, why, "")) // the session ends either way
	}
	code := uint16(closePolicy)
	if *why == shutdownRefusal {
		code = closeGoingAway
	}
	s.fail(code, strings.TrimPrefix(why.msg, "bottlecap: "))
}

// fail closes the session with code, telling both sides why. The close
// frames wait briefly for a frame in flight to that side; a side that
// holds the lock longer (it stopped reading) just sees the connection
// close.
func (s *socketSession) fail(code uint16, why string) {
	s.p.log.Warn("closing a metered WebSocket", "provider", s.up.Provider, "code", code, "why", why)
	payload := closePayload(code, "bottlecap meter: "+why)
	if lockWithin(&s.clientMu, closeFrameWait) {
		_, _ = s.client.Write(serverFrame(opClose, payload)) // the session ends either way
		s.clientMu.Unlock()
	}
	if lockWithin(&s.upMu, closeFrameWait) {
		_, _ = s.upstream.Write(clientFrame(opClose, payload))
		s.upMu.Unlock()
	}
}

// closeFrameWait is how long a close frame waits for a frame in flight to
// that side: long enough for one being written to finish (the pump holds
// the lock from a message's first byte to its report), short enough that a
// peer that stopped reading cannot hold up the meter's shutdown.
const closeFrameWait = 500 * time.Millisecond

// lockWithin takes mu unless it stays held for d.
func lockWithin(mu *sync.Mutex, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for !mu.TryLock() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
	return true
}

// toUpstream writes whole frames to the upstream.
func (s *socketSession) toUpstream(b []byte) error {
	s.upMu.Lock()
	defer s.upMu.Unlock()
	_, err := s.upstream.Write(b)
	return err
}

// report queues the report of a finished (or abandoned) response, once.
func (s *socketSession) reportLocked(id string, res usage.Result) {
	delete(s.open, id)
	if s.reported[id] {
		return
	}
	s.reported[id] = true
	if res.ID == "" {
		res.ID = id
	}
	if id == s.current {
		res.DeltaBytes = max(res.DeltaBytes, s.currentDelta)
	}
	r := s.p.newReport(s.up, res, nil)
	var sp *spend
	if f := s.flying[id]; f != nil {
		sp = f.spend
	}
	s.p.account(s.up, sp, res, &r)
	s.p.queue.add(r)
}

// note takes what one server message said about its response: a finished
// one is reported, a started one remembered.
func (s *socketSession) note(res usage.Result) {
	if res.ID == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if res.ID != s.current {
		s.current, s.currentDelta = res.ID, 0
	}
	if _, named := s.flying[res.ID]; !named && !s.reported[res.ID] && len(s.asked) > 0 {
		s.flying[res.ID], s.asked = s.asked[0], s.asked[1:]
	}
	if res.Complete {
		s.reportLocked(res.ID, res)
		if f, ok := s.flying[res.ID]; ok {
			delete(s.flying, res.ID)
			s.endFlight(f)
		}
		return
	}
	if !s.reported[res.ID] {
		s.open[res.ID] = res
	}
}

// ask starts the flight of a response.create that was admitted (with
// what its allowance set aside, sp), before it goes upstream; it returns
// the refusal instead while the bottle may not spend.
func (s *socketSession) ask(sp *spend) *refusal {
	f, ref := s.p.flights.begin(s.up, s.cut)
	if ref != nil {
		sp.finish(budget.Usage{})
		return ref
	}
	f.spend = sp
	s.mu.Lock()
	s.asked = append(s.asked, f)
	s.mu.Unlock()
	return nil
}

// writeEvent sends the client one JSON text message of the meter's own.
func (s *socketSession) writeEvent(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	s.clientMu.Lock()
	defer s.clientMu.Unlock()
	_, err = s.client.Write(serverFrame(opText, b))
	return err
}

// deniedEvent is the error event the Responses WebSocket sends when a
// response.create cannot run: {"type":"error","status":…,"error":{…}},
// the error object in up's shape.
func deniedEvent(up *upstream, ref *refusal, streamID string) map[string]any {
	ev := errorBody(up.api.Denial, ref.status, ref.kind, ref.msg)
	ev["type"] = "error"
	ev["status"] = ref.status
	if streamID != "" {
		ev["stream_id"] = streamID
	}
	return ev
}
