package budget

import (
	"fmt"
	"time"
)

// Scope names one budget: its level and owner. ID is the agent's
// "slug/agent", the bottle's or ancestor's slug, or "-" for global.
type Scope struct {
	Kind ScopeKind `json:"scope"`
	ID   string    `json:"scope_id"`
}

func (s Scope) String() string {
	switch s.Kind {
	case ScopeGlobal:
		return "global budget"
	case ScopeFleet:
		return "fleet budget"
	}
	return fmt.Sprintf("%s budget %s", s.Kind, s.ID)
}

// owner is the budget's own identity, whoever's report touches it: an
// ancestor's budget seen from a child is still that bottle's budget.
func (s Scope) owner() Scope {
	if s.Kind == ScopeParent {
		return Scope{ScopeBottle, s.ID}
	}
	return s
}

// applicable is one limit of a scope for a provider, the usage of its
// window that the limit is compared with, and what allowances hold of it
// (holds weigh on every window: they stand for usage to come, now).
type applicable struct {
	Scope  Scope
	Limit  int64
	Window Window
	Used   int64
	Held   int64
	resets time.Time // a calendar window's end; zero otherwise
}

// exhausted is the budget's own state: what is used has reached the
// limit. Holds do not exhaust a budget (they are promises, not spending);
// they only leave less room.
func (a applicable) exhausted() bool { return a.Used >= a.Limit }

// room is what is left to grant: the limit less what is used and held.
func (a applicable) room() int64 { return max(max(a.Limit-a.Used, 0)-a.Held, 0) }

// scopes lists every limit of every scope that defines any for (bottle,
// agent, provider), most specific scope first: agent, bottle, parents
// nearest first, global; within a scope, in its set's order. An unknown
// bottle sees only the global scope; an implicit one (known from its
// reports only) sees the limits set on it explicitly, but no settings
// defaults: its name and agent are only what reports claim.
func (b *Book) scopes(slug, agent, provider string) []applicable {
	return b.scopesInto(nil, slug, agent, provider)
}

// scopesInto is scopes appended to out: the gate passes a buffer on its
// stack, so that a verdict allocates nothing for the limits it weighs.
func (b *Book) scopesInto(out []applicable, slug, agent, provider string) []applicable {
	// Every hold counts host-wide: when nothing is held there, nothing is
	// held anywhere, and the gate skips the lookups.
	anyHeld := b.held.global[provider] > 0
	if bt, ok := b.bottles[slug]; ok {
		agent = bt.AgentName(agent)
		if set, ok := b.agentLimit(bt, agent, provider); ok {
			var held int64
			if anyHeld {
				held = b.held.agent(slug, agent, provider)
			}
			s := Scope{ScopeAgent, slug + "/" + agent}
			for _, l := range set {
				out = append(out, b.applicable(s, l, func(c *counters) int64 { return c.agent(slug, agent, provider) }, held))
			}
		}
		for i, s := range b.lineage(slug) {
			if set, ok := b.bottleLimit(b.bottles[s], provider); ok {
				kind := ScopeBottle
				if i > 0 {
					kind = ScopeParent
				}
				var held int64
				if anyHeld {
					held = b.held.subtree(s)[provider]
				}
				for _, l := range set {
					out = append(out, b.applicable(Scope{kind, s}, l, func(c *counters) int64 { return c.subtree(s)[provider] }, held))
				}
			}
		}
	}
	if set, ok := b.globalLimit(provider); ok {
		for _, l := range set {
			out = append(out, b.applicable(Scope{ScopeGlobal, "-"}, l, func(c *counters) int64 { return c.global[provider] }, b.held.global[provider]))
		}
	}
	return out
}

// applicable is limit l of scope s with its window's usage, which used
// reads from the window's counters.
func (b *Book) applicable(s Scope, l Limit, used func(*counters) int64, held int64) applicable {
	c, resets := b.countAndReset(l.Window)
	return applicable{Scope: s, Limit: l.Tokens, Window: l.Window, Used: used(c), Held: held, resets: resets}
}

// bottleLimits are the limits in force at a bottle's own scope, from
// every source (sources.go).
func (b *Book) bottleLimits(bt *Bottle) Limits { return b.force[bt.Slug].bottle }

// agentLimits are the limits in force at one agent's scope within a
// bottle: the resolved ones of an agent with limits of its own, else the
// settings' for the agent's name (none for an implicit bottle, whose
// agent names are only what reports claim).
func (b *Book) agentLimits(bt *Bottle, agent string) Limits {
	if l, ok := b.force[bt.Slug].agents[agent]; ok || bt.Implicit {
		return l
	}
	return b.settings.Agents[agent].Budget
}

// bottleLimit, agentLimit and globalLimit look one provider up in the
// limits in force, resolved when a source changed: they run on every
// verdict.
func (b *Book) bottleLimit(bt *Bottle, provider string) (LimitSet, bool) {
	l, ok := b.force[bt.Slug].bottle[provider]
	return l, ok
}

func (b *Book) agentLimit(bt *Bottle, agent, provider string) (LimitSet, bool) {
	l, ok := b.agentLimits(bt, agent)[provider]
	return l, ok
}

func (b *Book) globalLimit(provider string) (LimitSet, bool) {
	l, ok := b.globalForce[provider]
	return l, ok
}

// governing picks the limit that decides: under nearest, among the limits
// of the most specific scope; under strict, among all of them. Of those,
// the first exhausted one, else the one with the least room left (what is
// neither used nor held), which is the one that bounds a grant. ok is
// false when no scope has a limit.
func (b *Book) governing(as []applicable) (applicable, bool) {
	if len(as) == 0 {
		return applicable{}, false
	}
	if b.settings.Precedence != Strict {
		n := 1
		for n < len(as) && as[n].Scope == as[0].Scope {
			n++
		}
		as = as[:n]
	}
	best := as[0]
	for _, a := range as {
		if a.exhausted() {
			return a, true
		}
		if a.room() < best.room() {
			best = a
		}
	}
	return best, true
}

// Verdict is the gate's answer for one (bottle, agent, provider).
type Verdict struct {
	Allowed   bool   `json:"allowed"`
	Bottle    string `json:"bottle,omitempty"`
	Agent     string `json:"agent,omitempty"`
	Provider  string `json:"provider"`
	Scope            // the governing scope; "none" when nothing limits
	Limit     int64  `json:"limit"`
	Used      int64  `json:"used"`
	Held      int64  `json:"held"`      // granted to allowances and not yet settled by reports
	Remaining int64  `json:"remaining"` // limit - used - held, at least 0
	Unlimited bool   `json:"unlimited,omitempty"`
	// Window is the governing limit's window: life, day, week, month, or
	// a rolling span as written (5h); ResetsAt is when a calendar
	// window's usage starts again from 0.
	Window   string    `json:"window,omitempty"`
	ResetsAt time.Time `json:"resets_at,omitzero"`
	State    State     `json:"state"`
	Reason   string    `json:"reason"`
}

// Verdict answers whether (bottle, agent, provider) may spend, and estimate
// more tokens when estimate > 0. It is denied while the governing budget is
// exhausted and while the bottle is cut off, frozen, killed or pending.
func (b *Book) Verdict(slug, agent, provider string, estimate int64) Verdict {
	v := b.budgetVerdict(slug, agent, provider)
	if bt, ok := b.bottles[slug]; ok {
		v.State = bt.State
		if bt.State.Blocked() {
			v.Allowed = false
			v.Reason = fmt.Sprintf("bottle %s is %s: %s", slug, bt.State, bt.StateReason)
			return v
		}
	}
	if v.Allowed && estimate > 0 && !v.Unlimited && v.Remaining < estimate {
		v.Allowed = false
		v.Reason = fmt.Sprintf("estimate of %d %s tokens exceeds the %d left in the %s%s", estimate, provider, v.Remaining, v.Scope, heldNote(v.Held))
	}
	return v
}

// budgetVerdict is the verdict of the budgets alone, whatever the state.
func (b *Book) budgetVerdict(slug, agent, provider string) Verdict {
	v := Verdict{Allowed: true, Bottle: slug, Agent: agent, Provider: provider, State: Active}
	if bt, ok := b.bottles[slug]; ok {
		v.Agent = bt.AgentName(agent)
	}
	var buf [4]applicable
	g, ok := b.governing(b.scopesInto(buf[:0], slug, v.Agent, provider))
	if !ok {
		v.Scope = Scope{Kind: "none", ID: ""}
		v.Unlimited = true
		_, v.Used, _ = b.Used(slug, v.Agent, provider)
		_, v.Held, _ = b.Held(slug, v.Agent, provider)
	} else {
		v.Scope, v.Limit, v.Used, v.Held = g.Scope, g.Limit, g.Used, g.Held
		v.Window, v.ResetsAt = g.Window.String(), g.resets
		v.Remaining = g.room()
		if g.exhausted() {
			v.Allowed = false
			v.Reason = exhaustedReason(g, provider)
		}
	}
	// The fleet always applies, above every local scope (fleet.go).
	if b.fleet != nil {
		if fp, on := b.fleetApplies(provider); on {
			return b.fleetVerdict(v, g, ok, fp)
		}
	}
	return v
}

func exhaustedReason(a applicable, provider string) string {
	return fmt.Sprintf("%s exhausted%s: %d of %d %s tokens used%s", a.Scope, windowPhrase(a.Window), a.Used, a.Limit, provider, resetPhrase(a.resets))
}

// windowPhrase names a limit's window in a reason ("" for a lifetime one,
// whose reasons read as they always did).
func windowPhrase(w Window) string {
	switch w.Period {
	case Life:
		return ""
	case Rolling:
		return " over the last " + w.String()
	}
	return " for the " + w.String()
}

// resetPhrase says when a calendar window resets.
func resetPhrase(at time.Time) string {
	if at.IsZero() {
		return ""
	}
	return " (resets at " + at.Format(time.RFC3339) + ")"
}

// GlobalVerdict is the host's usage of a provider against the global
// budget alone, whatever governs each bottle: what the status shows. Of
// several global limits it shows the governing one (the exhausted one,
// else the one with the least room).
func (b *Book) GlobalVerdict(provider string) Verdict {
	v := Verdict{Allowed: true, Provider: provider, Scope: Scope{ScopeGlobal, "-"}, Used: b.used.global[provider], Held: b.held.global[provider], State: Active}
	set, ok := b.globalLimit(provider)
	if !ok {
		v.Unlimited = true
		return v
	}
	as := make([]applicable, 0, len(set))
	for _, l := range set {
		as = append(as, b.applicable(v.Scope, l, func(c *counters) int64 { return c.global[provider] }, v.Held))
	}
	g, _ := b.governing(as)
	v.Limit, v.Used, v.Remaining, v.Window, v.ResetsAt = g.Limit, g.Used, g.room(), g.Window.String(), g.resets
	if g.exhausted() {
		v.Allowed = false
		v.Reason = "global budget exhausted" + windowPhrase(g.Window) + resetPhrase(g.resets)
	}
	return v
}

// LimitUse is one limit in force with its window's usage: what bottle
// show, the status and the dashboard list for each limit, so that every
// window's used, room and reset can be seen, not only the governing
// one's.
type LimitUse struct {
	Scope
	Provider  string    `json:"provider"`
	Limit     int64     `json:"limit"`
	Window    string    `json:"window"`
	Used      int64     `json:"used"`
	Held      int64     `json:"held"`
	Remaining int64     `json:"remaining"`
	ResetsAt  time.Time `json:"resets_at,omitzero"`
	Exhausted bool      `json:"exhausted"`
}

func (a applicable) use(provider string) LimitUse {
	return LimitUse{Scope: a.Scope, Provider: provider, Limit: a.Limit, Window: a.Window.String(), Used: a.Used,
		Held: a.Held, Remaining: a.room(), ResetsAt: a.resets, Exhausted: a.exhausted()}
}

// LimitUses lists the limits that govern (bottle, agent, provider) under
// the precedence in force — under nearest, every limit of the nearest
// scope with any; under strict, every limit of every scope — most
// specific first, each with its window's usage; then the fleet's, which
// always apply.
func (b *Book) LimitUses(slug, agent, provider string) []LimitUse {
	as := b.scopes(slug, agent, provider)
	if b.settings.Precedence != Strict {
		n := 0
		for n < len(as) && as[n].Scope == as[0].Scope {
			n++
		}
		as = as[:n]
	}
	out := make([]LimitUse, 0, len(as))
	for _, a := range as {
		out = append(out, a.use(provider))
	}
	return append(out, b.FleetLimitUses(provider)...)
}

// GlobalLimitUses lists the global limits of a provider with their
// windows' host-wide usage.
func (b *Book) GlobalLimitUses(provider string) []LimitUse {
	set, _ := b.globalLimit(provider)
	held := b.held.global[provider]
	out := make([]LimitUse, 0, len(set))
	for _, l := range set {
		out = append(out, b.applicable(Scope{ScopeGlobal, "-"}, l, func(c *counters) int64 { return c.global[provider] }, held).use(provider))
	}
	return out
}
