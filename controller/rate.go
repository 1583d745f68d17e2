package controller

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
)

// rateGuards are the rate guard's memory (SPEC section 12): for each
// bottle with a guard, the tokens its own reports brought over the last
// minute per guarded provider, by the core's clock when each report was
// counted (its commit), and, once the guard has tripped, when the bottle's
// rate came back under it and the timer that lifts what the guard did a
// minute after that. It lives in memory only: after a restart the windows
// start empty, which can only delay a trip by the minute of reports the
// restart forgot, never cause one; and a bottle the guard paused before
// the restart gets its quiet minute counted from the start. c.mu guards
// it.
type rateGuards struct {
	bottles map[string]*bottleRate
	stopped bool // the daemon is stopping: no new lifts
}

// bottleRate is one bottle's rate windows and its pending lift.
type bottleRate struct {
	windows map[string]*budget.RateWindow // per guarded provider
	// calm is, once the guard has tripped, the moment the bottle's rate
	// came (or will come, if nothing more arrives) back under its guards.
	calm time.Time
	stop func() bool // the lift's timer; nil when none is set
}

func newRateGuards() rateGuards { return rateGuards{bottles: map[string]*bottleRate{}} }

// bottle is a bottle's rate state, made on first use.
func (g *rateGuards) bottle(slug string) *bottleRate {
	br, ok := g.bottles[slug]
	if !ok {
		br = &bottleRate{windows: map[string]*budget.RateWindow{}}
		g.bottles[slug] = br
	}
	return br
}

// window is a provider's window, made on first use.
func (br *bottleRate) window(provider string) *budget.RateWindow {
	w, ok := br.windows[provider]
	if !ok {
		w = &budget.RateWindow{}
		br.windows[provider] = w
	}
	return w
}

// countRatesLocked counts committed reports in their bottles' rate
// windows, for each provider their bottle has a guard for, and returns
// the bottles it counted for. c.mu must be held.
func (c *Core) countRatesLocked(reports []budget.Report, now time.Time) []string {
	var touched []string
	seen := map[string]bool{}
	for _, r := range reports {
		if _, ok := c.book.RateGuard(r.Bottle, r.Provider); !ok || r.Counted <= 0 {
			continue
		}
		if !seen[r.Bottle] {
			seen[r.Bottle] = true
			touched = append(touched, r.Bottle)
		}
		c.rates.bottle(r.Bottle).window(r.Provider).Add(now, r.Counted)
	}
	return touched
}

// tripRatesLocked looks at the bottles whose rates just grew. A bottle
// over one of its guards that is still running (active or warned) is
// claimed for the rate policy, as a crossing claims one; a bottle the
// guard already stopped has its calm moved on by the new excess. The
// budgets' claims go first, so a report that both exhausts a budget and
// trips the guard gets the budget's policy. c.mu must be held.
func (c *Core) tripRatesLocked(slugs []string, now time.Time) []claim {
	var out []claim
	for _, slug := range slugs {
		b, ok := c.book.Bottle(slug)
		if !ok {
			continue
		}
		br := c.rates.bottles[slug]
		over, reason := c.overGuardLocked(slug, br, now)
		switch {
		case b.ByRateGuard:
			if over {
				c.holdCalmLocked(slug, br, now)
			}
		case over && !b.State.Blocked():
			c.book.TripRate(slug, reason)
			br.calm = time.Time{}
			c.holdCalmLocked(slug, br, now)
			p := c.book.RatePolicy()
			out = append(out, claim{slug: slug, kind: budget.ActionFor(p), event: budget.Event{Reason: reason}, policy: p})
		}
	}
	return out
}

// overGuardLocked reports whether any of the bottle's windows holds more
// than its guard allows, and the reason naming the first such provider by
// name (found without sorting: this runs for every batch of reports).
func (c *Core) overGuardLocked(slug string, br *bottleRate, now time.Time) (bool, string) {
	first := ""
	var count, guard int64
	for p, w := range br.windows {
		g, ok := c.book.RateGuard(slug, p)
		if n := w.Count(now); ok && n > g && (first == "" || p < first) {
			first, count, guard = p, n, g
		}
	}
	if first == "" {
		return false, ""
	}
	return true, budget.RateReason(count, guard, first)
}

// holdCalmLocked moves the bottle's calm to when its windows will all be
// back under their guards, if that is later, and moves its lift if one is
// set (it is set once the guard's action is done).
func (c *Core) holdCalmLocked(slug string, br *bottleRate, now time.Time) {
	for p, w := range br.windows {
		if guard, ok := c.book.RateGuard(slug, p); ok {
			if at := w.CalmAt(now, guard); at.After(br.calm) {
				br.calm = at
			}
		}
	}
	if b, _ := c.book.Bottle(slug); b.RateLiftable() {
		c.scheduleLiftLocked(slug, br, now)
	}
}

// scheduleLiftLocked (re)sets the timer that lifts what the guard did a
// minute after the bottle's rate came back under its guards.
func (c *Core) scheduleLiftLocked(slug string, br *bottleRate, now time.Time) {
	if br.stop != nil {
		br.stop()
		br.stop = nil
	}
	if c.rates.stopped {
		return
	}
	if br.calm.IsZero() {
		br.calm = now // nothing known of the rate (a restart): the quiet minute starts now
	}
	wait := max(br.calm.Add(budget.RateSpan).Sub(now), 0)
	br.stop = c.afterFunc(wait, func() { c.liftRate(slug) })
}

// liftRate restores a bottle the rate guard paused or cut off once its
// rate has stayed under its guards for a minute: journaled, audited and
// run like any restore. It lifts only what the guard did, once its action
// is done, and never an operator's; a report that came meanwhile has
// moved the lift on.
func (c *Core) liftRate(slug string) {
	now := c.now()
	c.mu.Lock()
	b, ok := c.book.Bottle(slug)
	br := c.rates.bottles[slug]
	if !ok || br == nil || c.rates.stopped || !b.RateLiftable() {
		c.mu.Unlock()
		return
	}
	if due := br.calm.Add(budget.RateSpan); now.Before(due) {
		c.scheduleLiftLocked(slug, br, now)
		c.mu.Unlock()
		return
	}
	br.stop = nil
	reason := "rate guard lifted: the rate stayed under its guard for a minute"
	c.book.SetState(slug, budget.Pending, reason, false)
	c.mu.Unlock()
	c.tell(budget.Notice{Kind: budget.NoticeRate, Bottle: slug, Action: budget.ActRestore, Reason: reason,
		Text: "rate guard on " + slug + " lifted: the rate stayed under its guard for a minute; restoring"})
	if _, err := c.start(context.Background(), slug, budget.ActRestore, reason, false); err != nil {
		c.log.Error("lift the rate guard", "bottle", slug, "err", err)
	}
}

// resetRateLocked empties a bottle's windows as a restore begins: after a
// restore the guard trips again only on a new excess. A pending lift has
// nothing left to do.
func (c *Core) resetRateLocked(slug string) {
	br, ok := c.rates.bottles[slug]
	if !ok {
		return
	}
	for _, w := range br.windows {
		w.Reset()
	}
	br.calm = time.Time{}
	if br.stop != nil {
		br.stop()
		br.stop = nil
	}
}

// rateActionDoneLocked sets the lift of a bottle whose pause or cutoff by
// the guard is done. c.mu must be held.
func (c *Core) rateActionDoneLocked(slug string, now time.Time) {
	if b, ok := c.book.Bottle(slug); ok && b.RateLiftable() {
		c.scheduleLiftLocked(slug, c.rates.bottle(slug), now)
	}
}

// scheduleLiftsLocked sets the lifts of the bottles the guard left paused
// or cut off before a restart. c.mu must be held.
func (c *Core) scheduleLiftsLocked(now time.Time) {
	for _, b := range c.book.Bottles() {
		if b.RateLiftable() {
			c.scheduleLiftLocked(b.Slug, c.rates.bottle(b.Slug), now)
		}
	}
}

// dropRateLocked forgets a forgotten bottle's rate state.
func (c *Core) dropRateLocked(slug string) {
	if br, ok := c.rates.bottles[slug]; ok {
		if br.stop != nil {
			br.stop()
		}
		delete(c.rates.bottles, slug)
	}
}

// stopTimers cancels every pending lift as the daemon stops; the next
// start sets them again from the ledger.
func (c *Core) stopTimers() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rates.stopped = true
	for _, br := range c.rates.bottles {
		if br.stop != nil {
			br.stop()
			br.stop = nil
		}
	}
}

// rateViewLocked is every guard over a bottle with what its own reports
// brought over the last minute. c.mu must be held.
func (c *Core) rateViewLocked(slug string, now time.Time) []api.RateGuard {
	guards := c.book.RateGuards(slug)
	if len(guards) == 0 {
		return nil
	}
	out := make([]api.RateGuard, 0, len(guards))
	for _, p := range slices.Sorted(maps.Keys(guards)) {
		g := api.RateGuard{Provider: p, Guard: guards[p]}
		if br, ok := c.rates.bottles[slug]; ok && br.windows[p] != nil {
			g.LastMinute = br.windows[p].Count(now)
		}
		out = append(out, g)
	}
	return out
}
