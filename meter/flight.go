package meter

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/bot-bottle/bottlecap/budget"
)

// flight is one metered exchange in flight: an HTTP request from the
// moment it is admitted until its response has been passed on and
// reported, or one response of a WebSocket session from its
// response.create until its terminal event. Cutting it ends it on the
// wire (SPEC section 11, mid-stream): the upstream is closed, so the
// provider stops generating, and the client gets one final error event
// in the provider's format.
type flight struct {
	up *upstream
	// spend is what its allowance set aside for it (nil in naive mode).
	spend *spend
	// stop ends the exchange on the wire, telling its client why.
	stop func(why refusal)
	once sync.Once
	why  atomic.Pointer[refusal]
}

// cut ends the flight, once, telling the client why. It returns at once;
// the exchange's own goroutine writes the error and reports.
func (f *flight) cut(why refusal) {
	f.once.Do(func() {
		f.why.Store(&why)
		f.stop(why)
	})
}

// cutBy is the refusal the flight was cut with, or nil (also for no
// flight: an exchange that is not metered is never cut).
func (f *flight) cutBy() *refusal {
	if f == nil {
		return nil
	}
	return f.why.Load()
}

// flightSet is the proxy's metered exchanges in flight, and what it last
// learnt of its bottle's state: while the bottle may not spend, a new
// exchange is refused before it reaches the upstream.
type flightSet struct {
	mu      sync.Mutex
	live    map[*flight]struct{}
	blocked *refusal // non-nil while the bottle's state forbids spending
	// drained is closed once the set is closing and the last flight ended.
	drained chan struct{}
}

// begin registers a flight for an admitted exchange to up; stop ends that
// exchange. It returns the refusal instead while the bottle is blocked:
// the check and the registration are one step, so a flight either sees
// the block or is cut by it.
func (fs *flightSet) begin(up *upstream, stop func(why refusal)) (*flight, *refusal) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.blocked != nil {
		return nil, fs.blocked
	}
	if fs.live == nil {
		fs.live = map[*flight]struct{}{}
	}
	f := &flight{up: up, stop: stop}
	fs.live[f] = struct{}{}
	return f, nil
}

// end unregisters a flight that has ended and reported.
func (fs *flightSet) end(f *flight) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	delete(fs.live, f)
	fs.drainedLocked()
}

// drainedLocked closes drained when the set is closing and empty.
func (fs *flightSet) drainedLocked() {
	if fs.drained != nil && len(fs.live) == 0 {
		select {
		case <-fs.drained:
		default:
			close(fs.drained)
		}
	}
}

// block refuses new flights with why from now on; a nil why lifts the
// block (the bottle may spend again), unless the set is closing. Flights
// already in flight are left to cutAll: each was registered before the
// block, so a cutAll that follows it finds them all.
func (fs *flightSet) block(why *refusal) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if why != nil || fs.drained == nil {
		fs.blocked = why
	}
}

// cutAll cuts every flight in flight and returns how many there were.
func (fs *flightSet) cutAll(why refusal) int {
	fs.mu.Lock()
	live := make([]*flight, 0, len(fs.live))
	for f := range fs.live {
		live = append(live, f)
	}
	fs.mu.Unlock()
	for _, f := range live {
		f.cut(why)
	}
	return len(live)
}

// close refuses new flights, cuts those in flight and waits until they
// have reported or ctx ends (a client that stopped reading can hold its
// exchange's last write).
func (fs *flightSet) close(ctx context.Context, why refusal) {
	fs.mu.Lock()
	fs.drained = make(chan struct{})
	fs.drainedLocked()
	fs.mu.Unlock()
	fs.block(&why)
	fs.cutAll(why)
	select {
	case <-fs.drained:
	case <-ctx.Done():
	}
}

// cutAll ends every metered exchange in flight of this meter's bottle
// (SPEC section 11): each gets why as its final error. It returns once
// each is told; their own goroutines write the errors and report.
func (p *Proxy) cutAll(why refusal) {
	if n := p.flights.cutAll(why); n > 0 {
		p.log.Warn("cut the streams in flight", "bottle", p.cfg.Bottle, "streams", n, "why", why.msg)
	}
}

// errCut is the cause of an outgoing request's context when its flight
// was cut.
var errCut = errors.New("bottlecap meter: the stream was cut")

// shutdownRefusal is the error a client gets when the meter stops under a
// stream still running.
var shutdownRefusal = refusal{http.StatusServiceUnavailable, budget.RefuseUnavailable,
	"bottlecap meter: the meter is shutting down; the response was ended before it finished"}
