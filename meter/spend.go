package meter

import (
	"fmt"
	"net/http"
	"sync"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/meter/estimate"
	"github.com/bot-bottle/bottlecap/meter/usage"
)

// spend is an admitted request's claim on its provider's pool: what was
// set aside for it, and its input estimate. As its response streams, the
// output that passed is counted against what was set aside, and more is
// taken (ahead of need) while the budget allows; finish gives back what
// was not spent. Only the goroutine that passes the response uses it.
type spend struct {
	pool     *pool
	provider string
	est      estimate.Estimate
	// took is the counted tokens set aside, extensions included; input is
	// the part of it that covers the input estimate; weight converts raw
	// tokens to counted ones.
	took, input int64
	weight      float64
	// slice is the output taken at a time (see sliceFor); capBytes, when
	// the request states an output cap, is the output past which the
	// upstream is taken to ignore it (0: no cap).
	slice, capBytes int64
	// unbounded: admitted without a reservation (--fail-open while the
	// daemon was unreachable); nothing is counted against it.
	unbounded bool
	// ext is an extension asked for and not yet answered; denied is why
	// one was refused (the budget: final), failed why the daemon could not
	// be asked for the last one (asked again when the stream runs out).
	ext            *waiter
	denied, failed *refusal
	// overCap is why the stream is cut once it passed capBytes.
	overCap *refusal
	// delta is the output bytes counted so far.
	delta int64

	once sync.Once
	id   string
}

// newSpend is the spend of a request the pool admitted with a.
func newSpend(up *upstream, est estimate.Estimate, a answer) *spend {
	s := &spend{pool: up.pool, provider: up.Provider, est: est, took: a.took, input: a.input,
		weight: a.weight, slice: sliceFor(est.OutputCap, a.weight), unbounded: a.took == 0}
	if est.OutputCap > 0 {
		s.capBytes = est.OutputCap*capBytesPerToken + capSlackBytes
	}
	return s
}

// counted converts raw tokens to counted ones, rounding up.
func (s *spend) counted(raw int64) int64 {
	return countedAt(raw, s.weight)
}

// track counts the output that has passed (delta bytes of generated
// content, converted by the estimator) against what was set aside. Half
// a slice before it runs out it asks for another slice, without waiting,
// so that the common stream never waits for the daemon; only a stream that
// has spent everything before the answer came waits for it. It returns the
// refusal to cut the stream with when it has spent all it was given and
// nothing more is coming: the budget said no, or the daemon could not be
// asked (fail closed; a stream outlives a short outage on what it holds);
// or when the stream passed far more output than the cap its request
// states allows (the upstream ignores the cap it was admitted on).
//
// A stream whose request states a cap still takes more as its counted
// output grows, as any stream does: the estimate errs high, and what it
// counts is what the report charges. So the cap bounds what is set aside
// up front, and each extension; what the stream may spend is still bound
// by what it holds.
func (s *spend) track(est *estimate.Estimator, delta int64) *refusal {
	if s == nil || s.unbounded || delta == s.delta {
		return nil
	}
	s.delta = delta
	if s.overCap == nil && s.capBytes > 0 && delta > s.capBytes {
		s.overCap = overCapRefusal(s.est.OutputCap, delta)
	}
	if s.overCap != nil {
		return s.overCap
	}
	spent := s.input + s.counted(est.Output(s.provider, s.est.Model, delta))
	s.collect(false)
	if s.ext == nil && s.denied == nil && s.failed == nil && s.took-spent < s.slice/2 {
		s.extend(spent)
	}
	asked := false
	for spent > s.took && !s.unbounded {
		switch {
		case s.ext != nil:
			s.collect(true)
		case s.denied != nil:
			return s.denied
		case asked:
			return s.failed
		default: // out of tokens with nothing asked: more than half a slice in one read, or a failed ask
			s.failed, asked = nil, true
			s.extend(spent)
		}
	}
	return nil
}

// extend asks the pool for another output slice, and for what the stream
// has spent beyond what it holds (one read can pass more than a slice).
func (s *spend) extend(spent int64) {
	took, w := s.pool.extend(s.slice + max(spent-s.took, 0))
	s.took += took
	s.ext = w
}

// collect takes the answer to the extension asked for, if it has come,
// or waits for it.
func (s *spend) collect(wait bool) {
	if s.ext == nil {
		return
	}
	var a answer
	if wait {
		a = <-s.ext.done
	} else {
		select {
		case a = <-s.ext.done:
		default:
			return
		}
	}
	s.ext = nil
	switch {
	case a.ref != nil && a.ref.status == http.StatusServiceUnavailable:
		s.failed = a.ref
	case a.ref != nil:
		s.denied = a.ref
	case a.took == 0:
		s.unbounded = true // --fail-open: the daemon could not be asked
	default:
		s.took += a.took
	}
}

// finish ends the request's claim, once: spent (its report's usage) leaves
// the allowance and the rest of what was set aside goes back to the pool.
// It returns the allowance the report names.
func (s *spend) finish(spent budget.Usage) string {
	if s == nil {
		return ""
	}
	s.once.Do(func() {
		if s.ext != nil {
			s.took += s.pool.withdraw(s.ext)
			s.ext = nil
		}
		s.id = s.pool.settle(s.took, spent)
	})
	return s.id
}

// estimateOf is the input estimate of a spend (none in naive mode).
func (s *spend) estimateOf() estimate.Estimate {
	if s == nil {
		return estimate.Estimate{}
	}
	return s.est
}

// account completes the report r of a response whose parser said res:
// its usage is never less than what passed (SPEC section 4: where the
// provider's counts did not arrive, the input estimate and the output
// counted from the deltas), the estimator learns from the provider's
// counts, and the spend ends, naming its allowance.
func (p *Proxy) account(up *upstream, sp *spend, res usage.Result, r *api.Report) {
	est := sp.estimateOf()
	model := est.Model
	if sp == nil {
		model = res.Model
	}
	if r.Model == "" {
		r.Model = est.Model // the response names none (a compaction): the request's
	}
	r.Usage = estimate.Floor(res, est, p.estimator.Output(up.Provider, model, res.DeltaBytes))
	if sp != nil && res.HasInput {
		p.estimator.Learn(up.Provider, est, res.Usage.Input+res.Usage.CacheRead+res.Usage.CacheWrite)
	}
	if sp != nil && res.Complete {
		p.estimator.LearnOutput(up.Provider, model, res.DeltaBytes, res.Usage.Output)
	}
	r.Allowance = sp.finish(r.Usage)
}

// reportUnanswered reports a request cut before its response began: the
// provider had it, and bills its input whether or not it answered, so it
// is counted at its input estimate (SPEC section 4), incomplete. In naive
// mode there is no estimate and nothing is reported.
func (p *Proxy) reportUnanswered(ex *exchange) {
	if ex.spend == nil {
		return
	}
	r := p.newReport(ex.up, usage.Result{}, nil)
	p.account(ex.up, ex.spend, usage.Result{}, &r)
	p.queue.add(r)
}

// overCapRefusal is the cut of a stream that passed delta bytes of output
// though its request stated an output cap of limit tokens: the upstream
// ignores the cap the meter admitted the request on, and would otherwise
// spend on what was set aside for a short answer. It is a denial, so the
// agent's SDK and Codex take it as final.
func overCapRefusal(limit, delta int64) *refusal {
	return &refusal{http.StatusTooManyRequests, budget.RefuseDenied, fmt.Sprintf(
		"bottlecap: the upstream went on past the output cap the request states (%d tokens): %d bytes of output passed, more than %d tokens can hold; the meter admitted the request on that cap and cut the stream",
		limit, delta, limit)}
}

// deniedLocked is the refusal of a waiter the daemon would not cover:
// the budget that governs, and what the request needed (for a stream in
// flight, its next output slice).
func (pl *pool) deniedLocked(w *waiter) *refusal {
	return &refusal{http.StatusTooManyRequests, budget.RefuseDenied, deniedMessage(pl.bottle, pl.agent, pl.verdict, &need{
		total: w.need, input: w.input, free: max(pl.held-pl.reserved, 0), more: w.extension,
	})}
}
