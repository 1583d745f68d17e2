package meter

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/client"
	"github.com/bot-bottle/bottlecap/internal/retry"
)

// watchBackoff spaces the watch's reconnections to the daemon's events.
var watchBackoff = retry.Backoff{Base: 100 * time.Millisecond, Max: 5 * time.Second}

// startWatch follows the bottle's state until the returned stop is called
// (which waits for the watch to end): when the bottle leaves active or
// warned — its own crossing, another scope's, an operator; pending counts
// as leaving — every stream in flight is cut and new requests are refused
// until it comes back.
func (p *Proxy) startWatch() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.watch(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}

// watch subscribes to the bottle's events and follows them, reconnecting
// with backoff whenever the stream drops (the daemon restarted, or dropped
// a subscriber that fell behind). Events missed while disconnected are
// made up for by asking a verdict once subscribed again, whose state
// stands for them.
func (p *Proxy) watch(ctx context.Context) {
	failures := 0
	for {
		s, err := p.cfg.Daemon.BottleEvents(ctx, p.cfg.Bottle)
		if err == nil {
			failures = 0
			p.recheck(ctx)
			p.follow(s)
			s.Close()
			err = s.Err()
		}
		if ctx.Err() != nil {
			return
		}
		if failures++; failures == 1 {
			// Once per outage. Meanwhile streams in flight run on (until
			// the recheck when the watch is back), and new requests still
			// ask the gate, which refuses a bottle that may not spend.
			p.log.Warn("lost the bottle's events; reconnecting", "bottle", p.cfg.Bottle, "err", errText(err))
		}
		if retry.Sleep(ctx, watchBackoff.Delay(failures)) != nil {
			return
		}
	}
}

// follow takes the bottle's state events until the stream ends. The meter
// filters by bottle itself: an operator's stream carries every bottle's.
func (p *Proxy) follow(s *client.EventStream) {
	for ev := range s.C {
		if ev.Type != "state" || ev.Bottle != p.cfg.Bottle {
			continue
		}
		var st struct {
			State  budget.State `json:"state"`
			Reason string       `json:"reason"`
		}
		if json.Unmarshal(ev.Data, &st) != nil {
			continue // not a state this meter can act on; the gate still answers for it
		}
		p.noteState(st.State, fmt.Sprintf("bottle %s is %s: %s", p.cfg.Bottle, st.State, st.Reason))
	}
}

// recheck asks the daemon where the bottle stands, after (re)subscribing.
// The verdict of any provider carries the bottle's state; an unanswered
// question leaves things as they were (the next state event corrects
// them).
func (p *Proxy) recheck(ctx context.Context) {
	vctx, cancel := context.WithTimeout(ctx, p.cfg.GateTimeout)
	defer cancel()
	v, err := p.cfg.Daemon.Verdict(vctx, client.VerdictQuery{Bottle: p.cfg.Bottle, Agent: p.cfg.Agent, Provider: p.fallback.Provider})
	if err != nil {
		if ctx.Err() == nil {
			p.log.Warn("cannot ask the bottle's state after subscribing to its events", "bottle", p.cfg.Bottle, "err", err.Error())
		}
		return
	}
	p.noteState(v.State, v.Reason) // a blocked bottle's reason says "bottle B is STATE: why"
}

// noteState acts on the bottle's state: anything but active or warned
// cuts what is in flight and refuses what comes, saying why (the state
// and its reason, as the daemon gives them).
func (p *Proxy) noteState(state budget.State, why string) {
	if state == budget.Active || state == budget.Warned {
		p.flights.block(nil)
		return
	}
	ref := refusal{http.StatusTooManyRequests, budget.RefuseDenied, fmt.Sprintf(
		"bottlecap: %s; the meter stops this bottle's responses until it is active again, so retrying will not help", why)}
	p.flights.block(&ref)
	p.cutAll(ref)
}

func errText(err error) string {
	if err == nil {
		return "the daemon ended the stream"
	}
	return err.Error()
}
