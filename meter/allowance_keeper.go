package meter

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
)

// keeper is the side of a pool that talks to the daemon: one goroutine
// per pool asks for tokens when requests wait, renews the allowance every
// third of its TTL while it holds anything, gives it back once the meter
// has been idle for idleRelease, and opens a new one when the daemon has
// forgotten it (a restart, an expiry).
type keeper struct {
	provider, bottle, agent string
	d                       Daemon
	timeout                 time.Duration
	failOpen                bool
	log                     *slog.Logger
	// quiet reports whether no usage report waits for the daemon: an
	// allowance is given back only then, so every report that names it
	// settles it first.
	quiet func() bool

	wakeC chan struct{}
	stop  chan struct{} // closed by close
	done  chan struct{} // run returned
}

// Keeper timing.
const (
	// retryAfterError is how soon the keeper tries again after the daemon
	// failed to answer, when requests in flight still need an allowance.
	retryAfterError = 250 * time.Millisecond
	// minCheck bounds how often an idle keeper looks again (while reports
	// are still on their way, say).
	minCheck = 100 * time.Millisecond
	// maxCallsPerStep bounds the daemon calls of one wake-up, should the
	// daemon keep granting and the waiters keep coming.
	maxCallsPerStep = 8
	// defaultTTL is assumed until the daemon has said when an allowance
	// expires (SPEC section 11's default allowance_ttl).
	defaultTTL = 30 * time.Second
)

// newPool makes the pool of one provider and starts its keeper.
func newPool(provider string, p *Proxy) *pool {
	pl := &pool{weight: 1, ttl: defaultTTL}
	pl.keeper = keeper{
		provider: provider, bottle: p.cfg.Bottle, agent: p.cfg.Agent, d: p.cfg.Daemon,
		timeout: p.cfg.GateTimeout, failOpen: p.cfg.FailOpen, log: p.log, quiet: func() bool { return p.queue.len() == 0 },
		wakeC: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
	go pl.run()
	return pl
}

// wake has the keeper look at the pool now.
func (k *keeper) wake() {
	select {
	case k.wakeC <- struct{}{}:
	default:
	}
}

// close stops the keeper, which gives the allowance back (bounded by the
// daemon call timeout), and waits for it.
func (pl *pool) close() {
	close(pl.stop)
	<-pl.done
}

// run is the keeper's loop.
func (pl *pool) run() {
	defer close(pl.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		timer.Reset(pl.step())
		select {
		case <-pl.wakeC:
		case <-timer.C:
		case <-pl.stop:
			pl.shutDown()
			return
		}
	}
}

// step makes the daemon calls the pool needs now and returns how long
// until it should look again.
func (pl *pool) step() time.Duration {
	for range maxCallsPerStep {
		now := time.Now()
		pl.mu.Lock()
		call, ok := pl.nextCallLocked(now)
		if !ok {
			next := pl.nextCheckLocked(now)
			pl.mu.Unlock()
			return next
		}
		pl.mu.Unlock()
		if !pl.do(call) {
			return retryAfterError
		}
	}
	return 0
}

// call is one daemon call the keeper makes: an ask or renewal (Tokens 0),
// or the release of an idle allowance.
type call struct {
	req     api.AllowanceRequest
	release bool
}

// nextCallLocked decides the next daemon call, if any: tokens for the
// waiters, or a new allowance for what the requests in flight still need
// when the daemon forgot theirs; else the release of an idle allowance,
// else a due renewal.
func (pl *pool) nextCallLocked(now time.Time) (call, bool) {
	short := pl.shortfallLocked()
	if len(pl.waiting) > 0 && short == 0 && pl.usableLocked(now) {
		pl.serveLocked(now, false)
	}
	if len(pl.waiting) > 0 || (pl.id == "" && short > 0 && pl.flights > 0) {
		return call{req: pl.requestLocked(pl.askLocked(short))}, true
	}
	if pl.id == "" {
		return call{}, false
	}
	if pl.flights == 0 && now.Sub(pl.lastUse) >= idleRelease && pl.quiet() {
		return call{req: pl.requestLocked(0), release: true}, true
	}
	if now.Sub(pl.renewed) >= pl.ttl/3 {
		return call{req: pl.requestLocked(0)}, true
	}
	return call{}, false
}

// requestLocked asks for tokens on the pool's allowance (a new one when
// none is open).
func (pl *pool) requestLocked(tokens int64) api.AllowanceRequest {
	return api.AllowanceRequest{ID: pl.id, Bottle: pl.bottle, Agent: pl.agent, Provider: pl.provider, Tokens: tokens}
}

// nextCheckLocked is how long the keeper may sleep: until the renewal is
// due or, with nothing in flight, until the allowance has been idle for
// idleRelease; and never longer than idleRelease, since requests ending
// do not wake it.
func (pl *pool) nextCheckLocked(now time.Time) time.Duration {
	if pl.id == "" {
		return time.Hour // nothing to keep until a request wakes the keeper
	}
	next := min(pl.renewed.Add(pl.ttl/3).Sub(now), idleRelease)
	if pl.flights == 0 && len(pl.waiting) == 0 {
		next = min(next, pl.lastUse.Add(idleRelease).Sub(now))
	}
	return max(next, minCheck)
}

// do makes one call and applies its answer; false means the daemon could
// not be asked.
func (pl *pool) do(c call) bool {
	ctx, cancel := context.WithTimeout(context.Background(), pl.timeout)
	defer cancel()
	go func() {
		select {
		case <-pl.stop:
			cancel() // shutting down: do not wait out the timeout
		case <-ctx.Done():
		}
	}()
	if c.release {
		pl.releaseIdle(ctx, c.req.ID)
		return true
	}
	a, err := pl.d.Allow(ctx, c.req)
	pl.mu.Lock()
	defer pl.mu.Unlock()
	return pl.applyLocked(c.req, a, err, time.Now())
}

// releaseIdle gives an idle allowance back, unless a request came
// meanwhile.
func (pl *pool) releaseIdle(ctx context.Context, id string) {
	pl.mu.Lock()
	if pl.id != id || pl.flights > 0 || len(pl.waiting) > 0 {
		pl.mu.Unlock()
		return
	}
	pl.id, pl.held = "", 0
	pl.mu.Unlock()
	pl.release(ctx, id)
}

// release gives an allowance back. Failing is harmless: it expires.
func (pl *pool) release(ctx context.Context, id string) {
	err := pl.d.ReleaseAllowance(ctx, id)
	if err != nil && !errors.Is(err, budget.ErrNotFound) {
		// Fallback: the daemon lets it expire after its TTL.
		pl.log.Warn("allowance not released; it will expire", "provider", pl.provider, "allowance", id, "err", err.Error())
	}
}

// applyLocked takes the daemon's answer to req. An allowance the daemon
// no longer knows is dropped, and the next call opens a new one for what
// the requests in flight still need. It reports false when the daemon
// could not be asked.
func (pl *pool) applyLocked(req api.AllowanceRequest, a api.Allowance, err error, now time.Time) bool {
	switch {
	case err != nil && req.ID != "" && errors.Is(err, budget.ErrNotFound):
		pl.log.Info("allowance lost (daemon restarted or it expired); asking again", "provider", pl.provider, "allowance", req.ID)
		pl.id, pl.held = "", 0
		return true
	case err != nil:
		pl.unreachableLocked(err, now)
		return false
	}
	pl.id, pl.verdict, pl.known, pl.renewed = a.ID, a.Verdict, true, now
	pl.held = min(pl.held+a.Granted, a.Held) // the daemon's account wins where it is lower (its weights, its floor at 0)
	pl.blocked = a.Verdict.State.Blocked()
	if a.Weight > 0 {
		pl.weight = a.Weight
	}
	if pl.ttl = a.ExpiresAt.Sub(now); pl.ttl < time.Second {
		pl.ttl = time.Second
	}
	pl.expires = now.Add(pl.ttl)
	pl.serveLocked(now, pl.blocked || a.Granted < req.Tokens)
	return true
}

// unreachableLocked answers the waiters when the daemon could not be
// asked: refused (fail closed), or admitted unreserved with --fail-open.
func (pl *pool) unreachableLocked(err error, now time.Time) {
	if len(pl.waiting) == 0 {
		pl.log.Warn("budget daemon unreachable; allowance not renewed", "provider", pl.provider, "err", err.Error())
		return
	}
	if pl.failOpen {
		// Fallback chosen by the operator (--fail-open): forward
		// unreserved; the responses are still reported through the queue.
		pl.log.Warn("budget daemon unreachable; forwarding (fail-open)", "provider", pl.provider, "err", err.Error())
		pl.failLocked(answer{}, now)
		return
	}
	pl.log.Warn("budget daemon unreachable; refusing (fail-closed)", "provider", pl.provider, "err", err.Error())
	pl.failLocked(answer{ref: &refusal{http.StatusServiceUnavailable, budget.RefuseUnavailable, unreachableMessage(err)}}, now)
}

// shutDown answers any waiter (nothing more is granted) and gives the
// allowance back.
func (pl *pool) shutDown() {
	pl.mu.Lock()
	pl.closed = true
	pl.failLocked(answer{ref: &shutdownRefusal}, time.Now())
	id := pl.id
	pl.id, pl.held = "", 0
	pl.mu.Unlock()
	if id == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), pl.timeout)
	defer cancel()
	pl.release(ctx, id)
}
