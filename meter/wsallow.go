package meter

import (
	"bytes"
	"context"

	"github.com/bot-bottle/bottlecap/meter/usage"
)

// admission admits one client message. A response.create is admitted as
// an HTTP request is (against the allowance: its estimate plus an output
// slice, or its max_output_tokens when smaller; in naive mode on the
// gate) and starts the flight of the response it asks for. Any other
// message starts nothing: in naive mode it is gated all the same, with
// allowances it passes unless reports back up, what it makes the model
// generate being counted against the response in flight.
func (s *socketSession) admission(ctx context.Context, create bool, payload []byte) *refusal {
	if s.p.cfg.Naive {
		ref := s.p.gate(ctx, s.up)
		if ref == nil && create {
			ref = s.ask(nil) // a response starts: it flies until its terminal event
		}
		return ref
	}
	if ref := s.p.backlog(); ref != nil || !create {
		return ref
	}
	est := s.p.estimator.Input(s.up.Provider, usage.OpenAIResponses, payload)
	a := s.up.pool.reserve(ctx, est.Tokens, est.OutputCap) // max_output_tokens, as over HTTP
	if a.ref != nil {
		return a.ref
	}
	return s.ask(newSpend(s.up, est, a))
}

// dropOldestAsked ends the flight of the oldest response.create whose
// response has not begun: the upstream refused it with an error event,
// so it will spend nothing.
func (s *socketSession) dropOldestAsked() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.asked) == 0 {
		return
	}
	f := s.asked[0]
	s.asked = s.asked[1:]
	s.endFlight(f)
}

// countDeltas counts the output of one delta event against the response
// in flight, which takes more of its allowance as it runs and is cut when
// none is granted, as an HTTP stream is.
func (s *socketSession) countDeltas(n int64) {
	if n == 0 {
		return
	}
	s.mu.Lock()
	s.currentDelta += n
	total, f := s.currentDelta, s.flying[s.current]
	s.mu.Unlock()
	if f == nil {
		return
	}
	if why := f.spend.track(s.p.estimator, total); why != nil {
		f.cut(*why)
	}
}

// messageHead keeps the first bytes of a server message, enough to tell
// an error event ({"type":"error",…}) from the others.
type messageHead struct {
	b [64]byte
	n int
}

func (h *messageHead) Write(p []byte) (int, error) {
	h.n += copy(h.b[h.n:], p)
	return len(p), nil
}

// isError reports whether the message is an error event, which answers a
// response.create the upstream refused.
func (h *messageHead) isError() bool {
	b := h.b[:h.n]
	i := bytes.Index(b, []byte(`"type"`))
	if i < 0 {
		return false
	}
	b = bytes.TrimLeft(b[i+len(`"type"`):], " \t\r\n")
	if len(b) == 0 || b[0] != ':' {
		return false
	}
	return bytes.HasPrefix(bytes.TrimLeft(b[1:], " \t\r\n"), []byte(`"error"`))
}
