package budget

import "fmt"

// Scope names one budget: its level and owner. ID is the agent's
// "slug/agent", the bottle's or ancestor's slug, or "-" for global.
type Scope struct {
	Kind ScopeKind `json:"scope"`
	ID   string    `json:"scope_id"`
}

func (s Scope) String() string {
	if s.Kind == ScopeGlobal {
		return "global budget"
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

// applicable is one scope with a limit for a provider, the usage
// aggregate that limit is compared with, and what allowances hold of it.
type applicable struct {
	Scope Scope
	Limit int64
	Used  int64
	Held  int64
}

// exhausted is the budget's own state: what is used has reached the
// limit. Holds do not exhaust a budget (they are promises, not spending);
// they only leave less room.
func (a applicable) exhausted() bool { return a.Used >= a.Limit }

// room is what is left to grant: the limit less what is used and held.
func (a applicable) room() int64 { return max(max(a.Limit-a.Used, 0)-a.Held, 0) }

// scopes lists every scope that defines a limit for (bottle, agent,
// provider), most specific first: agent, bottle, parents nearest first,
// global. An unknown bottle sees only the global scope; an implicit one
// (known from its reports only) sees the limits set on it explicitly, but
// no settings defaults: its name and agent are only what reports claim.
func (b *Book) scopes(slug, agent, provider string) []applicable {
	var out []applicable
	// Every hold counts host-wide: when nothing is held there, nothing is
	// held anywhere, and the gate skips the lookups.
	anyHeld := b.held.global[provider] > 0
	if bt, ok := b.bottles[slug]; ok {
		agent = bt.AgentName(agent)
		if l, ok := b.agentLimit(bt, agent, provider); ok {
			a := applicable{Scope: Scope{ScopeAgent, slug + "/" + agent}, Limit: l, Used: b.agentUsed(slug, agent, provider)}
			if anyHeld {
				a.Held = b.held.agent(slug, agent, provider)
			}
			out = append(out, a)
		}
		for i, s := range b.lineage(slug) {
			if l, ok := b.bottleLimit(b.bottles[s], provider); ok {
				kind := ScopeBottle
				if i > 0 {
					kind = ScopeParent
				}
				a := applicable{Scope: Scope{kind, s}, Limit: l, Used: b.subtreeUsed(s, provider)}
				if anyHeld {
					a.Held = b.held.subtree(s)[provider]
				}
				out = append(out, a)
			}
		}
	}
	if l, ok := b.globalLimit(provider); ok {
		out = append(out, applicable{Scope{ScopeGlobal, "-"}, l, b.used.global[provider], b.held.global[provider]})
	}
	return out
}

// bottleLimits are a bottle's own limits: registration and runtime values
// over the settings' defaults for its manifest name (not for an implicit
// bottle).
func (b *Book) bottleLimits(bt *Bottle) Limits {
	if bt.Implicit {
		return bt.Budget
	}
	return b.settings.Bottles[bt.Name].Budget.Merge(bt.Budget)
}

// agentLimits are one agent's limits within a bottle: registration and
// runtime values over the settings' defaults for the agent name (not for an
// implicit bottle).
func (b *Book) agentLimits(bt *Bottle, agent string) Limits {
	if bt.Implicit {
		return bt.AgentBudgets[agent]
	}
	return b.settings.Agents[agent].Budget.Merge(bt.AgentBudgets[agent])
}

// bottleLimit, agentLimit and globalLimit look one provider up in the same
// order as bottleLimits, agentLimits and GlobalLimits without building the
// merged maps: they run on every verdict.
func (b *Book) bottleLimit(bt *Bottle, provider string) (int64, bool) {
	if l, ok := bt.Budget[provider]; ok || bt.Implicit {
		return l, ok
	}
	l, ok := b.settings.Bottles[bt.Name].Budget[provider]
	return l, ok
}

func (b *Book) agentLimit(bt *Bottle, agent, provider string) (int64, bool) {
	if l, ok := bt.AgentBudgets[agent][provider]; ok || bt.Implicit {
		return l, ok
	}
	l, ok := b.settings.Agents[agent].Budget[provider]
	return l, ok
}

func (b *Book) globalLimit(provider string) (int64, bool) {
	if l, ok := b.global[provider]; ok {
		return l, true
	}
	l, ok := b.settings.Budget[provider]
	return l, ok
}

// governing picks the scope that decides: under nearest the most specific
// one; under strict the most specific exhausted one, else the one with the
// least room left (what is neither used nor held), which is the one that
// bounds a grant. ok is false when no scope has a limit.
func (b *Book) governing(as []applicable) (applicable, bool) {
	if len(as) == 0 {
		return applicable{}, false
	}
	if b.settings.Precedence != Strict {
		return as[0], true
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
	State     State  `json:"state"`
	Reason    string `json:"reason"`
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
	g, ok := b.governing(b.scopes(slug, v.Agent, provider))
	if !ok {
		v.Scope = Scope{Kind: "none", ID: ""}
		v.Unlimited = true
		_, v.Used, _ = b.Used(slug, v.Agent, provider)
		_, v.Held, _ = b.Held(slug, v.Agent, provider)
		return v
	}
	v.Scope, v.Limit, v.Used, v.Held = g.Scope, g.Limit, g.Used, g.Held
	v.Remaining = g.room()
	if g.exhausted() {
		v.Allowed = false
		v.Reason = exhaustedReason(g, provider)
	}
	return v
}

func exhaustedReason(a applicable, provider string) string {
	return fmt.Sprintf("%s exhausted: %d of %d %s tokens used", a.Scope, a.Used, a.Limit, provider)
}
