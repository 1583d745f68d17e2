package budget

import (
	"math"
	"sort"
	"strings"
)

// EventKind says what a budget did when usage grew.
type EventKind string

// A budget crosses its warn threshold, then its limit.
const (
	EventWarn    EventKind = "warn"
	EventCrossed EventKind = "crossed"
)

// Event is a budget crossing its warn threshold or its limit, with the
// bottles it governs and the policy each of them must be given.
type Event struct {
	Kind     EventKind
	Scope    Scope // the budget's own identity (an ancestor appears as its bottle scope)
	Provider string
	Limit    int64
	Used     int64
	Targets  []Target
	Reason   string
}

// Target is a bottle a crossing acts on, with its policy.
type Target struct {
	Slug   string
	Policy Policy
}

// Record counts a committed report (its Counted tokens, its Agent already
// resolved to the bottle's agent when empty) and returns the warn and limit
// crossings it caused, in every scope that applies to it whatever the
// precedence: a crossing of a scope that does not govern the reporting
// bottle may still govern others.
func (b *Book) Record(r Report) []Event {
	before := b.scopes(r.Bottle, r.Agent, r.Provider)
	b.Add(r.Bottle, r.Agent, r.Provider, r.Counted)
	var events []Event
	for _, a := range before {
		was, now := a.Used, SatAdd(a.Used, r.Counted)
		switch {
		case passes(was, now, a.Limit):
			events = append(events, b.event(EventCrossed, a.Scope.owner(), r.Provider, a.Limit, now))
		case passes(was, now, b.warnLevel(a.Limit)):
			events = append(events, b.event(EventWarn, a.Scope.owner(), r.Provider, a.Limit, now))
		}
	}
	return events
}

// passes reports whether usage growing from was to now reaches level for
// the first time. A level of 0 is reached by the first token counted.
func passes(was, now, level int64) bool {
	return now > was && now >= level && (was < level || was == 0)
}

// warnLevel is the usage at which a limit warns.
func (b *Book) warnLevel(limit int64) int64 {
	return int64(math.Ceil(float64(limit) * b.settings.WarnAt))
}

func (b *Book) event(kind EventKind, s Scope, provider string, limit, used int64) Event {
	e := Event{Kind: kind, Scope: s, Provider: provider, Limit: limit, Used: used}
	e.Reason = exhaustedReason(applicable{s, limit, used}, provider)
	if kind == EventWarn {
		e.Reason = strings.Replace(e.Reason, "exhausted", "past its warn threshold", 1)
	}
	e.Targets = b.Governed(s, provider)
	return e
}

// Governed lists the bottles a budget governs for a provider, with the
// policy each must be given when it is exhausted. An agent budget governs
// its bottle. A bottle budget governs the bottle and, under nearest, each
// descendant with no nearer bottle budget for the provider (under strict,
// every descendant). The global budget governs, under nearest, every bottle
// with no bottle or ancestor budget for the provider (under strict, all).
func (b *Book) Governed(s Scope, provider string) []Target {
	var out []Target
	switch s.Kind {
	case ScopeAgent:
		slug, agent, _ := strings.Cut(s.ID, "/")
		if bt, ok := b.bottles[slug]; ok {
			out = append(out, Target{slug, b.agentPolicy(bt, agent)})
		}
	case ScopeBottle, ScopeParent:
		for _, bt := range b.bottles {
			if b.governedBy(bt, s.ID, provider) {
				out = append(out, Target{bt.Slug, b.policyOf(bt)})
			}
		}
	case ScopeGlobal:
		for _, bt := range b.bottles {
			if b.governedBy(bt, "", provider) {
				out = append(out, Target{bt.Slug, b.policyOf(bt)})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Slug < out[j].Slug })
	return out
}

// governedBy reports whether the budget of bottle owner ("" = global)
// governs bt: owner is in bt's lineage and, under nearest, no bottle below
// owner in that lineage has a limit of its own for the provider.
func (b *Book) governedBy(bt *Bottle, owner, provider string) bool {
	if bt.Implicit {
		return owner == ""
	}
	for _, s := range b.lineage(bt.Slug) {
		if s == owner {
			return true
		}
		if b.bottles[s].Implicit {
			break
		}
		if _, ok := b.bottleLimit(b.bottles[s], provider); ok && b.settings.Precedence != Strict {
			return false
		}
	}
	return owner == ""
}

// policyOf is a bottle's policy: its registration value, else the settings
// for its manifest name, else for its agent's name, else the default.
func (b *Book) policyOf(bt *Bottle) Policy {
	for _, p := range []Policy{bt.Shutdown, b.settings.Bottles[bt.Name].Shutdown, b.settings.Agents[bt.Agent].Shutdown} {
		if p != "" {
			return p
		}
	}
	return b.defaultPolicy()
}

// agentPolicy is the policy an agent budget's crossing gives its bottle:
// the bottle's registration value, else the settings for the agent's name,
// else the bottle's policy.
func (b *Book) agentPolicy(bt *Bottle, agent string) Policy {
	if bt.Shutdown != "" {
		return bt.Shutdown
	}
	if p := b.settings.Agents[agent].Shutdown; p != "" {
		return p
	}
	return b.policyOf(bt)
}

func (b *Book) defaultPolicy() Policy {
	if b.settings.Shutdown != "" {
		return b.settings.Shutdown
	}
	return Cutoff
}

// Exhausted lists every budget that is exhausted now, as crossing events.
// The daemon uses it on start to act on crossings it committed but had not
// yet acted on before a crash.
func (b *Book) Exhausted() []Event {
	var out []Event
	for k, used := range b.agentUsed {
		bt, ok := b.bottles[k.bottle]
		if !ok || bt.Implicit {
			continue
		}
		if l, ok := b.agentLimits(bt, k.agent)[k.provider]; ok && used >= l {
			out = append(out, b.event(EventCrossed, Scope{ScopeAgent, k.bottle + "/" + k.agent}, k.provider, l, used))
		}
	}
	for _, bt := range b.bottles {
		if bt.Implicit {
			continue
		}
		for p, l := range b.bottleLimits(bt) {
			if used := b.subtreeUsed[bottleKey{bt.Slug, p}]; used >= l {
				out = append(out, b.event(EventCrossed, Scope{ScopeBottle, bt.Slug}, p, l, used))
			}
		}
	}
	for p, l := range b.GlobalLimits() {
		if used := b.globalUsed[p]; used >= l {
			out = append(out, b.event(EventCrossed, Scope{ScopeGlobal, "-"}, p, l, used))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Reason < out[j].Reason })
	return out
}

// OverBudget returns the first exhausted verdict of any provider and any
// agent for a bottle, ignoring its state; ok is false when every budget
// governing the bottle has room. Raising a budget uses it to decide whether
// a cut-off bottle can be restored.
func (b *Book) OverBudget(slug string) (Verdict, bool) {
	bt, ok := b.bottles[slug]
	if !ok {
		return Verdict{}, false
	}
	agents := map[string]bool{bt.Agent: true}
	for k := range b.agentUsed {
		if k.bottle == slug {
			agents[k.agent] = true
		}
	}
	for _, p := range b.Providers() {
		for a := range agents {
			if v := b.budgetVerdict(slug, a, p); !v.Allowed {
				return v, true
			}
		}
	}
	return Verdict{}, false
}
