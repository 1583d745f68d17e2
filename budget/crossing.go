package budget

import (
	"math"
	"sort"
	"strings"
	"time"
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
	Window   Window
	Used     int64
	// ResetsAt is when a calendar window's period ends (zero for
	// lifetime and rolling limits).
	ResetsAt time.Time
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
// bottle may still govern others. The report counts in the windows its
// TS falls in (a report without a time, now); one dated later than the
// book's clock moves the clock there first. A report for a period that
// has closed counts toward lifetime usage only, and crosses nothing in
// the current one.
func (b *Book) Record(r Report) []Event {
	ts := r.TS
	if ts.IsZero() {
		ts = b.now
	}
	b.Advance(ts)
	var buf [4]applicable
	before := b.scopesInto(buf[:0], r.Bottle, r.Agent, r.Provider)
	lineage := b.lineage(r.Bottle)
	was := b.used.global[r.Provider]
	b.used.add(r.Bottle, r.Agent, r.Provider, r.Counted, lineage)
	b.recordWindows(r, ts, lineage)
	var events []Event
	for _, a := range before {
		if !b.inWindow(a.Window, ts) {
			continue
		}
		was, now := a.Used, SatAdd(a.Used, r.Counted)
		a.Used = now
		switch {
		case passes(was, now, a.Limit):
			events = append(events, b.event(EventCrossed, a, r.Provider))
		case passes(was, now, b.warnLevel(a.Limit)):
			events = append(events, b.event(EventWarn, a, r.Provider))
		}
	}
	if b.fleet != nil {
		events = append(events, b.recordFleet(r, was)...)
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

func (b *Book) event(kind EventKind, a applicable, provider string) Event {
	a.Scope = a.Scope.owner()
	e := eventWithout(kind, a, provider)
	e.Targets = b.Governed(a.Scope, provider)
	return e
}

// eventWithout is an event with its reason but no targets yet.
func eventWithout(kind EventKind, a applicable, provider string) Event {
	e := Event{Kind: kind, Scope: a.Scope, Provider: provider, Limit: a.Limit, Window: a.Window, Used: a.Used, ResetsAt: a.resets}
	e.Reason = exhaustedReason(a, provider)
	if kind == EventWarn {
		e.Reason = strings.Replace(e.Reason, "exhausted", "past its warn threshold", 1)
	}
	return e
}

// WarnMark is what keeps a warning to once per window: "" for a
// lifetime limit, else the window and the period it warned in — a
// calendar period by its end ("day@2026-11-22T00:00:00Z"), a rolling
// window by the span-long stretch of time now is in (it warns at most
// once per span) — with the time after which the mark can be forgotten
// (zero: never).
func (e Event) WarnMark(now time.Time) (mark string, until time.Time) {
	switch {
	case e.Window == LifeWindow:
		return "", time.Time{}
	case e.Window.Calendar():
		return e.Window.String() + "@" + e.ResetsAt.UTC().Format(time.RFC3339), e.ResetsAt
	}
	span := int64(e.Window.Span())
	end := time.Unix(0, (floorDiv(now.UnixNano(), span)+1)*span).UTC()
	return e.Window.String() + "@" + end.Format(time.RFC3339), end
}

// Governed lists the bottles a budget governs for a provider, with the
// policy each must be given when it is exhausted. An agent budget governs
// its bottle. A bottle budget governs the bottle and, under nearest, each
// descendant with no nearer bottle budget for the provider (under strict,
// every descendant). The global budget governs, under nearest, every bottle
// with no bottle or ancestor budget for the provider (under strict, all).
// The fleet budget governs every bottle.
func (b *Book) Governed(s Scope, provider string) []Target {
	var out []Target
	switch s.Kind {
	case ScopeAgent:
		slug, agent, _ := strings.Cut(s.ID, "/")
		if bt, ok := b.bottles[slug]; ok {
			out = append(out, Target{slug, b.agentPolicy(bt, agent)})
		}
	case ScopeBottle, ScopeParent:
		out = b.governedBelow(s.ID, provider)
	case ScopeGlobal:
		for _, bt := range b.bottles {
			if b.governedBy(bt, "", provider) {
				out = append(out, Target{bt.Slug, b.policyOf(bt)})
			}
		}
	case ScopeFleet:
		for _, bt := range b.bottles {
			out = append(out, Target{bt.Slug, b.policyOf(bt)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Slug < out[j].Slug })
	return out
}

// governedBelow walks owner's subtree for the bottles its budget governs:
// under nearest, a descendant with a limit of its own for the provider
// takes itself and everything below it out of owner's hands.
func (b *Book) governedBelow(owner, provider string) []Target {
	if _, ok := b.bottles[owner]; !ok {
		return nil
	}
	var out []Target
	stack := []string{owner}
	for len(stack) > 0 && len(out) <= len(b.bottles) {
		s := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		bt := b.bottles[s]
		if _, own := b.bottleLimit(bt, provider); s != owner && own && b.settings.Precedence != Strict {
			continue
		}
		out = append(out, Target{s, b.policyOf(bt)})
		for c := range b.children[s] {
			stack = append(stack, c)
		}
	}
	return out
}

// governedBy reports whether the budget of bottle owner ("" = global)
// governs bt: owner is in bt's lineage and, under nearest, no bottle below
// owner in that lineage has a limit of its own for the provider.
func (b *Book) governedBy(bt *Bottle, owner, provider string) bool {
	for _, s := range b.lineage(bt.Slug) {
		if s == owner {
			return true
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

// budgetOver is one budget governing a bottle, as Governed defines it,
// with the policy its exhaustion gives that bottle.
type budgetOver struct {
	applicable
	provider string
	policy   Policy
}

func (g budgetOver) key() exemptKey { return exemptKey{g.Scope, g.provider, g.Window} }

// governingBudgets lists every limit that governs bt for any provider (the
// same relation as Governed, seen from the bottle): each agent budget of its
// agents, its nearest bottle or ancestor budget (under strict, all of them)
// and the global budget when no bottle budget is nearer (under strict,
// always); then the fleet budget, always; every limit of each, one per
// window.
func (b *Book) governingBudgets(bt *Bottle) []budgetOver {
	var out []budgetOver
	agents := b.agentsOf(bt)
	line := b.lineage(bt.Slug)
	over := func(s Scope, set LimitSet, p string, policy Policy, used func(*counters) int64) {
		for _, l := range set {
			out = append(out, budgetOver{b.applicable(s, l, used, 0), p, policy})
		}
	}
	for _, p := range b.limitedProviders(bt, agents, line) {
		for _, a := range agents {
			if set, ok := b.agentLimit(bt, a, p); ok {
				over(Scope{ScopeAgent, bt.Slug + "/" + a}, set, p, b.agentPolicy(bt, a),
					func(c *counters) int64 { return c.agent(bt.Slug, a, p) })
			}
		}
		bottleLimited := false
		for _, s := range line {
			if set, ok := b.bottleLimit(b.bottles[s], p); ok {
				bottleLimited = true
				over(Scope{ScopeBottle, s}, set, p, b.policyOf(bt), func(c *counters) int64 { return c.subtree(s)[p] })
				if b.settings.Precedence != Strict {
					break
				}
			}
		}
		if set, ok := b.globalLimit(p); ok && (!bottleLimited || b.settings.Precedence == Strict) {
			over(Scope{ScopeGlobal, "-"}, set, p, b.policyOf(bt), func(c *counters) int64 { return c.global[p] })
		}
	}
	return append(out, b.fleetOver(bt)...)
}

// agentsOf lists the agents a bottle has budgets or usage for, sorted.
func (b *Book) agentsOf(bt *Bottle) []string {
	set := map[string]bool{bt.Agent: true}
	for a := range b.force[bt.Slug].agents {
		set[a] = true
	}
	if t, ok := b.used.tallies[bt.Slug]; ok {
		for k := range t.agents {
			set[k.agent] = true
		}
	}
	return sortedKeys(set)
}

// limitedProviders lists the providers any budget over bt limits, sorted.
func (b *Book) limitedProviders(bt *Bottle, agents, line []string) []string {
	set := map[string]bool{}
	for _, a := range agents {
		for p := range b.agentLimits(bt, a) {
			set[p] = true
		}
	}
	for _, s := range line {
		for p := range b.bottleLimits(b.bottles[s]) {
			set[p] = true
		}
	}
	for p := range b.GlobalLimits() {
		set[p] = true
	}
	return sortedKeys(set)
}

func sortedKeys(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// acts reports whether an exhausted budget acts: a zero limit denies from
// the start but, as for reports, acts only once a token has been counted.
func (a applicable) acts() bool { return a.exhausted() && a.Used > 0 }

// Exemptions are, for each bottle an operator let run (restored, state
// active or warned), the budgets already exhausted over it before a change:
// the change does not act on that bottle for those budgets.
type Exemptions map[string]map[exemptKey]bool

type exemptKey struct {
	scope    Scope
	provider string
	window   Window
}

// OperatorExempt records the Exemptions of the given bottles now, before a
// change. Bottles no operator restored have none: any exhausted budget over
// them acts.
func (b *Book) OperatorExempt(slugs []string) Exemptions {
	ex := Exemptions{}
	for _, slug := range slugs {
		bt, ok := b.bottles[slug]
		if !ok || !bt.ByOperator || bt.State.Blocked() {
			continue
		}
		for _, g := range b.governingBudgets(bt) {
			if g.acts() {
				if ex[slug] == nil {
					ex[slug] = map[exemptKey]bool{}
				}
				ex[slug][g.key()] = true
			}
		}
	}
	return ex
}

// Crossings is what a change (a limit lowered, a new parent, a settings
// reload, a restart) leaves to act on among the given bottles: for each
// budget exhausted over one of them that is still active or warned, a
// crossing event targeting those bottles; for each budget past its warn
// threshold over an active one, a warn event. Lowering a limit below what
// is used is a crossing like any other. Blocked bottles are left alone, and
// so are the exempt budgets of bottles an operator restored.
func (b *Book) Crossings(slugs []string, exempt Exemptions) []Event {
	type eventKey struct {
		kind EventKind
		exemptKey
	}
	byKey := map[eventKey]*Event{}
	var order []eventKey
	add := func(kind EventKind, g budgetOver, slug string) {
		k := eventKey{kind, g.key()}
		e, ok := byKey[k]
		if !ok {
			ev := eventWithout(kind, g.applicable, g.provider)
			e = &ev
			byKey[k] = e
			order = append(order, k)
		}
		e.Targets = append(e.Targets, Target{slug, g.policy})
	}
	for _, slug := range slugs {
		bt, ok := b.bottles[slug]
		if !ok || bt.State.Blocked() {
			continue
		}
		for _, g := range b.governingBudgets(bt) {
			switch {
			case g.acts() && !exempt[slug][g.key()]:
				add(EventCrossed, g, slug)
			case !g.exhausted() && g.Used > 0 && g.Used >= b.warnLevel(g.Limit) && bt.State == Active:
				add(EventWarn, g, slug)
			}
		}
	}
	out := make([]Event, 0, len(order))
	for _, k := range order {
		e := byKey[k]
		sort.Slice(e.Targets, func(i, j int) bool { return e.Targets[i].Slug < e.Targets[j].Slug })
		out = append(out, *e)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Reason < out[j].Reason })
	return out
}

// Restorable lists the given bottles that a budget cut off or paused (not
// an operator, not the rate guard) and that no exhausted budget governs
// any more: raising a limit, leaving a parent or a window's reset gave
// them room again.
func (b *Book) Restorable(slugs []string) []string {
	var out []string
	for _, slug := range slugs {
		bt, ok := b.bottles[slug]
		if !ok || !liftable(bt.State) || bt.ByOperator || bt.ByRateGuard {
			continue
		}
		if !b.overBudget(bt) {
			out = append(out, slug)
		}
	}
	return out
}

// liftable are the states a budget's own action leaves a bottle in that
// room again reverses (with a restore): a cutoff and a pause.
func liftable(s State) bool { return s == CutOff || s == Paused }

// overBudget reports whether any budget governing bt is exhausted.
func (b *Book) overBudget(bt *Bottle) bool {
	for _, g := range b.governingBudgets(bt) {
		if g.exhausted() {
			return true
		}
	}
	return false
}

// Rearmable lists the given bottles a budget warned (not an operator)
// whose every governing budget is back under its warn threshold, as after
// a window's reset: they are active again, and warn anew when the next
// window's usage passes the threshold.
func (b *Book) Rearmable(slugs []string) []string {
	var out []string
	for _, slug := range slugs {
		bt, ok := b.bottles[slug]
		if !ok || bt.State != Warned || bt.ByOperator {
			continue
		}
		if !b.pastWarn(bt) {
			out = append(out, slug)
		}
	}
	return out
}

// pastWarn reports whether any budget governing bt has usage at or past
// its warn threshold.
func (b *Book) pastWarn(bt *Bottle) bool {
	for _, g := range b.governingBudgets(bt) {
		if g.Used > 0 && g.Used >= b.warnLevel(g.Limit) {
			return true
		}
	}
	return false
}
