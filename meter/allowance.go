package meter

import (
	"context"
	"math"
	"sync"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
)

// Allowance tuning (SPEC section 11). All amounts are counted tokens, the
// units of limits and usage.
const (
	// outputSlice is the output a request is admitted with, on top of its
	// input estimate: enough for most turns of a coding agent, far below
	// max_tokens, whose worst case reserved up front would deny agents with
	// large contexts. A stream takes another slice as it runs low. A
	// request whose body states a smaller output cap (max_tokens: 200)
	// takes that instead, since its provider stops there (see sliceFor).
	outputSlice = 4096
	// capBytesPerToken and capSlackBytes bound the output a stream may
	// pass when its request states an output cap of n tokens: n ×
	// capBytesPerToken + capSlackBytes bytes of text, tool-call arguments
	// and thinking. A provider that honours the cap never comes near it
	// (tokenizers average 3–5 bytes a token on text and code; the slack
	// covers a few very long tokens under a tiny cap); past it the
	// upstream is ignoring the cap the request was admitted on, and the
	// stream is cut.
	capBytesPerToken = 8
	capSlackBytes    = 512
	// maxHeadroom caps what a pool asks beyond its shortfall, and
	// headroomShare makes it shrink with the budget: a pool asks at most
	// 1/headroomShare of what the budget has left (as of the daemon's last
	// answer) on top of what it needs, so that a meter near the end of a
	// budget holds only what its requests need and leaves the rest to the
	// other meters that share it.
	maxHeadroom   = 512 << 10
	headroomShare = 16
	// firstHeadroom is the headroom of a pool's first ask, before the
	// daemon has said what is left.
	firstHeadroom = outputSlice
	// idleRelease is how long a pool with nothing in flight keeps its
	// allowance before giving it back, so that an idle meter's held drops
	// within a few seconds.
	idleRelease = 2 * time.Second
)

// pool is the meter's allowance for one provider: what the daemon holds
// for this (bottle, agent, provider), sub-allocated to the requests in
// flight. A request whose tokens the pool has is admitted without asking
// the daemon; only a shortfall, a renewal or a release goes to the daemon,
// and always from the pool's keeper goroutine, one call at a time, so the
// daemon's answers are applied in the order it gave them.
type pool struct {
	keeper

	mu sync.Mutex
	// id is the daemon's allowance, "" while none is open.
	id string
	// weight converts the estimator's raw tokens to counted ones (the
	// daemon's weight for the provider; 1 until it has said).
	weight float64
	// held is what the allowance holds by the meter's account: granted,
	// less the counted usage of the requests that have finished (whose
	// reports settle it at the daemon). reserved is what the requests in
	// flight were promised; held − reserved is free.
	held, reserved int64
	flights        int
	// expires is when the daemon forgets the allowance unless renewed;
	// renewed is when it last answered; ttl is the gap between the two.
	expires, renewed time.Time
	ttl              time.Duration
	// lastUse is when a request last took or gave back tokens.
	lastUse time.Time
	// verdict is the daemon's last verdict on the triple; blocked is set
	// when an acknowledgement says the bottle may not spend at all, and
	// makes every admission ask the daemon until it says otherwise.
	verdict budget.Verdict
	known   bool
	blocked bool
	// waiting are the requests the pool could not serve from what it has,
	// in the order they came; the keeper asks the daemon for them.
	waiting []*waiter
	// closed: the keeper has stopped; whoever waits now is refused.
	closed bool
}

// waiter is one request waiting for need tokens, input of them its input
// estimate, or a stream in flight waiting for more (extension).
type waiter struct {
	need, input int64
	extension   bool
	done        chan answer // buffered: the keeper never blocks on it
}

// answer is the keeper's reply to a waiter: took tokens were set aside
// for it (input of them for its input, converted at weight), or ref says
// why not. A nil ref with took 0 admits a request unreserved (--fail-open
// with the daemon unreachable).
type answer struct {
	took, input int64
	weight      float64
	ref         *refusal
}

// countedLocked converts raw tokens to counted ones at the pool's weight.
func (pl *pool) countedLocked(raw int64) int64 {
	return countedAt(raw, pl.weight)
}

// countedAt converts raw tokens to counted ones at weight, rounding up:
// an estimate must not shrink in the conversion.
func countedAt(raw int64, weight float64) int64 {
	if weight == 1 || weight <= 0 {
		return raw
	}
	return int64(math.Ceil(float64(raw) * weight))
}

// sliceFor is the output a request takes at a time, in counted tokens at
// weight: at admission, and again each time its stream runs low. It is an
// output slice, or the request's own output cap (outputCap raw tokens, 0
// when the body states none the estimator trusts) when that is smaller:
// the provider generates no more than the cap, reasoning included, so a
// request with max_tokens: 200 fits a budget with 1,000 tokens left.
func sliceFor(outputCap int64, weight float64) int64 {
	if outputCap <= 0 {
		return outputSlice
	}
	return min(outputSlice, countedAt(outputCap, weight))
}

// usableLocked reports whether the pool may hand out what it holds
// without asking the daemon: an allowance is open and not about to
// expire, and nothing says the bottle is blocked.
func (pl *pool) usableLocked(now time.Time) bool {
	return pl.id != "" && !pl.blocked && now.Before(pl.expires)
}

// reserve sets aside one request's input estimate (inputRaw raw tokens)
// and its first output slice (see sliceFor; outputCap is the cap its body
// states, raw): from what the pool holds when it can (the common case,
// which does not touch the daemon), else after the keeper has asked the
// daemon for more. A refusal with status 0 means the client left while it
// waited.
func (pl *pool) reserve(ctx context.Context, inputRaw, outputCap int64) answer {
	now := time.Now()
	pl.mu.Lock()
	input := pl.countedLocked(inputRaw)
	need := input + sliceFor(outputCap, pl.weight)
	if len(pl.waiting) == 0 && pl.usableLocked(now) && pl.held-pl.reserved >= need {
		pl.takeLocked(need, now, true)
		pl.mu.Unlock()
		return answer{took: need, input: input, weight: pl.weight}
	}
	w := &waiter{need: need, input: input, done: make(chan answer, 1)}
	pl.waitLocked(w)
	pl.mu.Unlock()
	select {
	case a := <-w.done:
		return a
	case <-ctx.Done():
		return pl.abandon(w)
	}
}

// abandon withdraws a waiter whose client left; tokens the keeper set
// aside for it meanwhile go back.
func (pl *pool) abandon(w *waiter) answer {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	for i, x := range pl.waiting {
		if x == w {
			pl.waiting = append(pl.waiting[:i], pl.waiting[i+1:]...)
			return answer{ref: &refusal{}}
		}
	}
	if a := <-w.done; a.ref == nil {
		pl.giveBackLocked(a.took, 0, time.Now())
	}
	return answer{ref: &refusal{}}
}

// withdraw takes back a stream's extension request when the stream ends
// first: it returns what the keeper set aside for it meanwhile (0 if
// nothing), which the stream then gives back with the rest.
func (pl *pool) withdraw(w *waiter) int64 {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	for i, x := range pl.waiting {
		if x == w {
			pl.waiting = append(pl.waiting[:i], pl.waiting[i+1:]...)
			return 0
		}
	}
	return (<-w.done).took
}

// takeLocked promises n more tokens to a request: a new one (a flight)
// or one in flight.
func (pl *pool) takeLocked(n int64, now time.Time, flight bool) {
	pl.reserved += n
	if flight {
		pl.flights++
	}
	pl.lastUse = now
}

// extend asks for n more tokens for a request in flight, without
// waiting: took is what the pool gave at once, else the waiter's done
// channel will carry the keeper's answer once it has asked the daemon.
func (pl *pool) extend(n int64) (took int64, w *waiter) {
	now := time.Now()
	pl.mu.Lock()
	if len(pl.waiting) == 0 && pl.usableLocked(now) && pl.held-pl.reserved >= n {
		pl.takeLocked(n, now, false)
		pl.mu.Unlock()
		return n, nil
	}
	w = &waiter{need: n, extension: true, done: make(chan answer, 1)}
	pl.waitLocked(w)
	pl.mu.Unlock()
	return 0, w
}

// waitLocked queues w for the keeper, or refuses it at once once the
// keeper has stopped.
func (pl *pool) waitLocked(w *waiter) {
	if pl.closed {
		w.done <- answer{ref: &shutdownRefusal}
		return
	}
	pl.waiting = append(pl.waiting, w)
	pl.wake()
}

// giveBackLocked ends a request that was promised took tokens and spent
// spent: its promise goes, and what it spent leaves the allowance (its
// report settles as much at the daemon). held never goes below 0, as at
// the daemon.
func (pl *pool) giveBackLocked(took, spent int64, now time.Time) {
	pl.reserved -= took
	pl.held = max(pl.held-spent, 0)
	pl.flights--
	pl.lastUse = now
}

// settle ends a request: took was set aside for it, spent is what its
// report charges. It returns the allowance the report names ("" when none
// is open: the report then settles nothing).
func (pl *pool) settle(took int64, spent budget.Usage) string {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	pl.giveBackLocked(took, pl.countedLocked(spent.Total()), time.Now())
	return pl.id
}

// block makes the pool stop serving from what it holds until the daemon
// says the bottle may spend again: an acknowledgement said it may not.
func (pl *pool) block() {
	pl.mu.Lock()
	pl.blocked = true
	pl.mu.Unlock()
}

// shortfallLocked is what the pool lacks to serve every request in flight
// and every waiter, given what it holds.
func (pl *pool) shortfallLocked() int64 {
	want := pl.reserved
	for _, w := range pl.waiting {
		want += w.need
	}
	return max(want-pl.held, 0)
}

// askLocked is how much to ask the daemon for, to cover shortfall: the
// shortfall and some headroom, so that the next requests are served
// without a round trip, but never much of what the budget has left.
func (pl *pool) askLocked(shortfall int64) int64 {
	if shortfall == 0 {
		return 0 // a renewal, or a fresh verdict for a blocked pool
	}
	headroom := int64(firstHeadroom)
	if pl.known {
		headroom = maxHeadroom
		if !pl.verdict.Unlimited {
			headroom = min(headroom, pl.verdict.Remaining/headroomShare)
		}
	}
	return shortfall + headroom
}

// serveLocked answers the waiters the pool can now serve, in order;
// with short set (the daemon granted less than asked, or nothing), it
// refuses the others, naming the budget. A stream in flight short of a
// whole slice then takes what is left: the last tokens of a budget go to
// the streams that can use them rather than stay held.
func (pl *pool) serveLocked(now time.Time, short bool) {
	kept := pl.waiting[:0]
	for _, w := range pl.waiting {
		free := pl.held - pl.reserved
		switch {
		case pl.usableLocked(now) && free >= w.need:
			pl.takeLocked(w.need, now, !w.extension)
			w.done <- answer{took: w.need, input: w.input, weight: pl.weight}
		case short && w.extension && free > 0 && pl.usableLocked(now):
			pl.takeLocked(free, now, false)
			w.done <- answer{took: free, weight: pl.weight}
		case short:
			w.done <- answer{ref: pl.deniedLocked(w)}
		default:
			kept = append(kept, w)
		}
	}
	clear(pl.waiting[len(kept):])
	pl.waiting = kept
}

// failLocked answers every waiter with a: the daemon could not be asked.
func (pl *pool) failLocked(a answer, now time.Time) {
	for _, w := range pl.waiting {
		if a.ref == nil {
			pl.takeLocked(0, now, !w.extension) // admitted unreserved, still a flight
		}
		w.done <- a
	}
	clear(pl.waiting)
	pl.waiting = pl.waiting[:0]
}
