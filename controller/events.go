package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
)

// hub fans events out to /v1/events subscribers without ever waiting for
// one: a subscriber whose buffer is full has fallen behind and is dropped
// (its stream ends with a "resync" event if it can still take one), so
// publishing costs ingestion the same whether dashboards read or stall.
type hub struct {
	mu sync.Mutex
	// subs receive events, by the bottle they watch ("" for every event),
	// so that an event reaches its bottle's watchers without a look at
	// every other bottle's (a meter per bottle may watch). open are all
	// streams whose handler still runs, dropped ones included, which
	// shutdown must not wait for either.
	subs   map[string]map[*subscriber]struct{}
	open   map[*subscriber]struct{}
	closed bool
}

// subscriber is one open event stream.
type subscriber struct {
	ch chan []byte // SSE frames, encoded once for every subscriber
	// bottle, when set, is the one bottle whose events it takes.
	bottle string
	// lagged is set, before ch is closed, when the hub dropped it for
	// falling behind.
	lagged atomic.Bool
	// closing and abort end a write in progress at shutdown.
	closing atomic.Bool
	abort   func()
}

// subscriberBuffer is how many events a subscriber may be behind before it
// is dropped: more than the largest batch a meter sends at once.
const subscriberBuffer = 1024

func newHub() *hub {
	return &hub{subs: map[string]map[*subscriber]struct{}{}, open: map[*subscriber]struct{}{}}
}

// subscribe opens a stream of every event, or of one bottle's ("" for
// all); abort must make the stream's pending write fail at once.
func (h *hub) subscribe(bottle string, abort func()) (*subscriber, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, false
	}
	sub := &subscriber{ch: make(chan []byte, subscriberBuffer), bottle: bottle, abort: abort}
	if h.subs[bottle] == nil {
		h.subs[bottle] = map[*subscriber]struct{}{}
	}
	h.subs[bottle][sub] = struct{}{}
	h.open[sub] = struct{}{}
	return sub, true
}

func (h *hub) unsubscribe(sub *subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.open, sub)
	if _, ok := h.subs[sub.bottle][sub]; ok {
		h.removeLocked(sub)
	}
}

// removeLocked ends a subscriber's stream of events.
func (h *hub) removeLocked(sub *subscriber) {
	delete(h.subs[sub.bottle], sub)
	if len(h.subs[sub.bottle]) == 0 {
		delete(h.subs, sub.bottle)
	}
	close(sub.ch)
}

// send gives an event about bottle ("" for none) to every subscriber that
// takes it: those of every event and those of that bottle.
func (h *hub) send(bottle string, frame []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sendLocked(h.subs[""], frame)
	if bottle != "" {
		h.sendLocked(h.subs[bottle], frame)
	}
}

func (h *hub) sendLocked(subs map[*subscriber]struct{}, frame []byte) {
	for sub := range subs {
		select {
		case sub.ch <- frame:
		default:
			h.dropLocked(sub)
		}
	}
}

// dropLocked ends the stream of a subscriber that has missed an event.
func (h *hub) dropLocked(sub *subscriber) {
	sub.lagged.Store(true)
	h.removeLocked(sub)
}

// close ends every stream and fails their writes in progress, so that
// http.Server.Shutdown waits for no subscriber, reading or not.
func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for _, subs := range h.subs {
		for sub := range subs {
			h.removeLocked(sub)
		}
	}
	for sub := range h.open {
		sub.closing.Store(true)
		sub.abort()
	}
}

// count is the number of open streams.
func (h *hub) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.open)
}

// listening reports whether anyone takes events about bottle, so that
// publishing costs ingestion nothing (no JSON encoding) when no dashboard
// is open and no meter watches the bottle.
func (h *hub) listening(bottle string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs[""]) > 0 || (bottle != "" && len(h.subs[bottle]) > 0)
}

// publish sends an event to every subscriber that takes it.
func (c *Core) publish(typ, bottle string, data any) {
	if !c.hub.listening(bottle) {
		return
	}
	e := api.Event{Type: typ, Bottle: bottle, TS: c.now().UTC()}
	if data != nil {
		b, err := json.Marshal(data)
		if err == nil {
			e.Data = b
		}
	}
	c.hub.send(bottle, sseFrame(e))
}

// handleEvents streams events as server-sent events until the client goes
// away, falls behind or the daemon shuts down. A comment line every 15 s
// keeps idle connections alive through proxies and lets the client notice
// a dead daemon. Each write has its own deadline (EventWriteTimeout): the
// server's read and write timeouts would otherwise cut the stream.
//
// ?bottle=<slug> streams that bottle's events only: what a meter watches
// to learn that its bottle left active. Any peer that may report for the
// bottle may watch it (a process in a container only its own bottle);
// every event, unfiltered, is for operators.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	bottle := r.URL.Query().Get("bottle")
	if err := s.checkEventsPeer(r, bottle); err != nil {
		writeErr(w, err)
		return
	}
	rc := http.NewResponseController(w)
	// No read deadline: the stream sends no body, and the server's
	// background read then only notices the client hanging up.
	_ = rc.SetReadDeadline(time.Time{})
	sub, ok := s.hub.subscribe(bottle, func() { _ = rc.SetWriteDeadline(time.Unix(1, 0)) })
	if !ok {
		writeError(w, http.StatusServiceUnavailable, "daemon is shutting down")
		return
	}
	defer s.hub.unsubscribe(sub)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	st := eventStream{w: w, rc: rc, sub: sub, timeout: s.limits.EventWriteTimeout}
	if err := st.write([]byte(": bottlecap events\n\n")); err != nil {
		return
	}
	if s.stream(r.Context(), st) {
		s.metrics.droppedSubs.Inc()
	}
}

// checkEventsPeer lets operators watch anything, and other peers one
// bottle they may report for.
func (s *Server) checkEventsPeer(r *http.Request, bottle string) error {
	peer, _ := peerFrom(r.Context())
	if bottle != "" {
		if err := budget.ValidateSlug("bottle", bottle); err != nil {
			return err
		}
	}
	if peer.Operator {
		return nil
	}
	if bottle == "" {
		return fmt.Errorf("%w: only root, the daemon's user and settings operators may watch every event; others may watch one bottle's (GET /v1/events?bottle=<slug>)", budget.ErrDenied)
	}
	return s.checkPeerBottle(r.Context(), peer, bottle, "watch the events of")
}

// stream sends events until the stream ends, and reports whether it ended
// because the subscriber fell behind: the hub dropped it, or a write
// missed its deadline.
func (s *Server) stream(ctx context.Context, st eventStream) (dropped bool) {
	tick := time.NewTicker(15 * time.Second)
	defer tick.Stop()
	for {
		var err error
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
			err = st.write([]byte(": keep-alive\n\n"))
		case frame, ok := <-st.sub.ch:
			if !ok {
				st.endLagged(s.now())
				return st.sub.lagged.Load()
			}
			err = st.write(frame)
		}
		if err != nil {
			// A write that failed after the hub dropped the subscriber
			// (it hung up while stalled) still counts as a drop.
			return st.sub.lagged.Load() || (errors.Is(err, os.ErrDeadlineExceeded) && !st.sub.closing.Load())
		}
	}
}

// eventStream writes one subscriber's stream, each write under a deadline.
type eventStream struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	sub     *subscriber
	timeout time.Duration
}

var errStreamClosing = errors.New("event stream closing")

func (st eventStream) write(frame []byte) error {
	if err := st.rc.SetWriteDeadline(time.Now().Add(st.timeout)); err != nil {
		return err
	}
	// Checked after setting the deadline, so a shutdown's abort is never
	// overwritten by a fresh deadline.
	if st.sub.closing.Load() {
		return errStreamClosing
	}
	if _, err := st.w.Write(frame); err != nil {
		return err
	}
	return st.rc.Flush()
}

// sseFrame renders an event as a server-sent event.
func sseFrame(e api.Event) []byte {
	b, _ := json.Marshal(e) // an api.Event always marshals
	return fmt.Appendf(nil, "event: %s\ndata: %s\n\n", e.Type, b)
}

// endLagged tells a subscriber the hub dropped that it missed events and
// must reload; one that does not take even that within the deadline is
// simply cut off.
func (st eventStream) endLagged(now time.Time) {
	if st.sub.lagged.Load() {
		_ = st.write(sseFrame(api.Event{Type: "resync", TS: now.UTC()}))
	}
}
