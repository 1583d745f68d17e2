package controller

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/bot-bottle/bottlecap/api"
)

// hub fans events out to /v1/events subscribers. A subscriber too slow to
// keep up loses events rather than slowing ingestion; it is sent a
// "resync" event so it knows to reload.
type hub struct {
	mu     sync.Mutex
	subs   map[chan api.Event]bool
	closed bool
}

const subscriberBuffer = 256

func newHub() *hub { return &hub{subs: map[chan api.Event]bool{}} }

func (h *hub) subscribe() (chan api.Event, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, false
	}
	c := make(chan api.Event, subscriberBuffer)
	h.subs[c] = true
	return c, true
}

func (h *hub) unsubscribe(c chan api.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.subs[c] {
		delete(h.subs, c)
		close(c)
	}
}

func (h *hub) send(e api.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.subs {
		select {
		case c <- e:
		default:
			h.dropOldest(c)
		}
	}
}

// dropOldest makes room in a full subscriber's buffer and tells it to
// resync, since it has now missed at least one event.
func (h *hub) dropOldest(c chan api.Event) {
	select {
	case <-c:
	default:
	}
	select {
	case c <- api.Event{Type: "resync", TS: time.Now().UTC()}:
	default:
	}
}

// close ends every stream (at shutdown, so http.Server.Shutdown is not
// held up by open event streams).
func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for c := range h.subs {
		delete(h.subs, c)
		close(c)
	}
}

// listening reports whether anyone subscribes, so that publishing costs
// ingestion nothing (no JSON encoding) when no dashboard is open.
func (h *hub) listening() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs) > 0
}

// publish sends an event to every subscriber.
func (s *Server) publish(typ, bottle string, data any) {
	if !s.hub.listening() {
		return
	}
	e := api.Event{Type: typ, Bottle: bottle, TS: s.now().UTC()}
	if data != nil {
		b, err := json.Marshal(data)
		if err == nil {
			e.Data = b
		}
	}
	s.hub.send(e)
}

// handleEvents streams events as server-sent events until the client goes
// away or the daemon shuts down. A comment line every 15 s keeps idle
// connections alive through proxies and lets the client notice a dead
// daemon.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	c, ok := s.hub.subscribe()
	if !ok {
		writeError(w, http.StatusServiceUnavailable, "daemon is shutting down")
		return
	}
	defer s.hub.unsubscribe(c)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	fmt.Fprint(w, ": bottlecap events\n\n")
	_ = rc.Flush()
	tick := time.NewTicker(15 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
			fmt.Fprint(w, ": keep-alive\n\n")
		case e, ok := <-c:
			if !ok {
				return
			}
			b, _ := json.Marshal(e) // an api.Event always marshals
			fmt.Fprintf(w, "event: %s\ndata: %s\n\n", e.Type, b)
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}
