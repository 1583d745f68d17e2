package budget

import (
	"fmt"
	"strings"
)

// Source is where a limit comes from (SPEC section 12). One scope may hold
// a limit for a provider from several sources at once; the one of the
// highest rank is in force and the others are overridden: runtime beats
// registration and labels, which beat settings. Registration and labels
// are one rank: a bottle's registration (API or CLI) and its containers'
// labels each replace what the other set for a provider, whichever comes
// last.
type Source string

// The sources of a limit.
const (
	// SourceSettings: settings.yml, globally (budget:), by bottle name
	// (bottles: NAME: budget:) or by agent name (agents: NAME: budget:).
	SourceSettings Source = "settings"
	// SourceRegistration: PUT /v1/bottles/{slug} or bottlecap bottle register.
	SourceRegistration Source = "registration"
	// SourceLabel: the container label bot-bottle.budget.
	SourceLabel Source = "label"
	// SourceRuntime: PUT /v1/budgets/{scope}/{id} or bottlecap budget set.
	SourceRuntime Source = "runtime"
)

// Removable reports whether a limit from this source can be removed
// through the API (DELETE /v1/budgets, bottlecap budget rm): runtime and
// registration limits can; a limit from settings or a label is changed at
// its source.
func (s Source) Removable() bool { return s == SourceRuntime || s == SourceRegistration }

// runtimeLimits are the limits set at runtime, by scope. They live beside
// the bottles, not on them: a bottle's registration and labels are one
// source, its runtime limits another, and the ledger keeps them apart.
type runtimeLimits struct {
	global  Limits
	bottles map[string]Limits            // by slug
	agents  map[string]map[string]Limits // by slug, then agent
}

func newRuntimeLimits() runtimeLimits {
	return runtimeLimits{global: Limits{}, bottles: map[string]Limits{}, agents: map[string]map[string]Limits{}}
}

// at returns the runtime limits of one scope (nil when none).
func (r *runtimeLimits) at(s Scope) Limits {
	switch s.Kind {
	case ScopeGlobal:
		return r.global
	case ScopeBottle:
		return r.bottles[s.ID]
	case ScopeAgent:
		slug, agent, _ := strings.Cut(s.ID, "/")
		return r.agents[slug][agent]
	}
	return nil
}

// put replaces the runtime limits of one scope (nil or empty: none).
func (r *runtimeLimits) put(s Scope, l Limits) {
	empty := len(l) == 0
	switch s.Kind {
	case ScopeGlobal:
		if empty {
			l = Limits{}
		}
		r.global = l
	case ScopeBottle:
		if empty {
			delete(r.bottles, s.ID)
			return
		}
		r.bottles[s.ID] = l
	case ScopeAgent:
		slug, agent, _ := strings.Cut(s.ID, "/")
		if empty {
			delete(r.agents[slug], agent)
			if len(r.agents[slug]) == 0 {
				delete(r.agents, slug)
			}
			return
		}
		if r.agents[slug] == nil {
			r.agents[slug] = map[string]Limits{}
		}
		r.agents[slug][agent] = l
	}
}

// forget drops the runtime limits of a bottle and its agents.
func (r *runtimeLimits) forget(slug string) {
	delete(r.bottles, slug)
	delete(r.agents, slug)
}

// windows adds every window the runtime limits use to set.
func (r *runtimeLimits) windows(set map[Window]bool) {
	r.global.windows(set)
	for _, l := range r.bottles {
		l.windows(set)
	}
	for _, as := range r.agents {
		for _, l := range as {
			l.windows(set)
		}
	}
}

// layer is what one source sets at a scope, and where an operator
// changes it.
type layer struct {
	source Source
	origin string
	limits Limits
}

// globalLayers are the sources of the global scope, lowest rank first.
func (b *Book) globalLayers() []layer {
	return []layer{
		{SourceSettings, "settings.yml (budget:)", b.settings.Budget},
		{SourceRuntime, runtimeOrigin, b.runtime.global},
	}
}

const runtimeOrigin = "the runtime API (bottlecap budget set)"

// bottleLayers are the sources of a bottle's own scope, lowest rank
// first. An implicit bottle has no settings layer: its name is unknown.
func (b *Book) bottleLayers(bt *Bottle) []layer {
	var out []layer
	if !bt.Implicit && bt.Name != "" {
		out = append(out, layer{SourceSettings, "settings.yml (bottles: " + bt.Name + ": budget:)", b.settings.Bottles[bt.Name].Budget})
	}
	return append(out,
		layer{SourceLabel, "the label bot-bottle.budget on its containers", bt.LabelBudget},
		layer{SourceRegistration, "its registration (PUT /v1/bottles/" + bt.Slug + ", bottlecap bottle register)", bt.Budget},
		layer{SourceRuntime, runtimeOrigin, b.runtime.bottles[bt.Slug]})
}

// agentLayers are the sources of one agent's scope within a bottle,
// lowest rank first (labels set no agent limits).
func (b *Book) agentLayers(bt *Bottle, agent string) []layer {
	var out []layer
	if !bt.Implicit {
		out = append(out, layer{SourceSettings, "settings.yml (agents: " + agent + ": budget:)", b.settings.Agents[agent].Budget})
	}
	return append(out,
		layer{SourceRegistration, "its bottle's registration (agent_budgets, --agent-budget)", bt.AgentBudgets[agent]},
		layer{SourceRuntime, runtimeOrigin, b.runtime.agents[bt.Slug][agent]})
}

// inForce merges the layers by rank: for each provider, the limits of the
// highest-ranking source that sets any.
func inForce(layers []layer) Limits {
	var out Limits
	for _, l := range layers {
		out = out.Merge(l.limits)
	}
	return out
}

// forced is what a bottle's scopes hold once their sources are resolved
// (resolveBottle): its own limits, and those of each agent with a limit
// set on it at registration or at runtime. Any other agent's limits are
// the settings' for its name, looked up as it comes (there is no end of
// agent names a report may bring).
type forced struct {
	bottle Limits
	agents map[string]Limits
}

// resolveGlobal puts the global limits in force from their sources.
func (b *Book) resolveGlobal() { b.globalForce = inForce(b.globalLayers()) }

// resolveBottle puts a bottle's limits in force from their sources. It
// runs when one of them changes (a registration, labels, a runtime limit,
// a settings reload), so that the gate looks a limit up once per scope,
// however many sources there are.
func (b *Book) resolveBottle(slug string) {
	bt, ok := b.bottles[slug]
	if !ok {
		delete(b.force, slug)
		return
	}
	f := forced{bottle: inForce(b.bottleLayers(bt))}
	for _, a := range b.explicitAgents(bt) {
		if f.agents == nil {
			f.agents = map[string]Limits{}
		}
		f.agents[a] = inForce(b.agentLayers(bt, a))
	}
	b.force[slug] = f
}

// resolveAll puts every limit in force again (after a settings reload).
func (b *Book) resolveAll() {
	b.resolveGlobal()
	for slug := range b.bottles {
		b.resolveBottle(slug)
	}
}

// explicitAgents are the agents of a bottle with a limit set on them at
// registration or at runtime, sorted.
func (b *Book) explicitAgents(bt *Bottle) []string {
	set := map[string]bool{}
	for a := range bt.AgentBudgets {
		set[a] = true
	}
	for a := range b.runtime.agents[bt.Slug] {
		set[a] = true
	}
	return sortedKeys(set)
}

// SetRuntime sets runtime limits at a scope (global, bottle or agent) for
// the providers in l; the scope's other providers keep theirs. They are
// in force at once over registration, labels and settings.
func (b *Book) SetRuntime(s Scope, l Limits) {
	b.runtime.put(s, b.runtime.at(s).Merge(l))
	b.keepWindows(l)
	b.resolveScope(s)
}

// RemoveRuntime removes the runtime limits of the given providers at a
// scope: what they overrode is in force again.
func (b *Book) RemoveRuntime(s Scope, providers ...string) {
	b.runtime.put(s, b.runtime.at(s).Without(providers...))
	b.resolveScope(s)
}

// resolveScope resolves what a change at scope s can move.
func (b *Book) resolveScope(s Scope) {
	if s.Kind == ScopeGlobal {
		b.resolveGlobal()
		return
	}
	slug, _, _ := strings.Cut(s.ID, "/")
	b.resolveBottle(slug)
}

// LimitSource is what one source sets for one provider at one scope, and
// whether it is in force there (Overridden false) or a source of a higher
// rank overrides it.
type LimitSource struct {
	Scope
	Provider string   `json:"provider"`
	Limits   LimitSet `json:"limits"`
	Source   Source   `json:"source"`
	// Origin says where the limit is changed, in an operator's words:
	// "settings.yml (bottles: dev: budget:)".
	Origin     string `json:"origin"`
	Overridden bool   `json:"overridden"`
}

// LimitSources lists every limit of every scope with its source: the
// global scope, then each bottle (by slug) and its agents (by name); at
// each scope, by provider, the limit in force first, then the ones it
// overrides from the highest rank down. Settings limits by bottle or agent
// name are listed at each scope they reach: the bottles of that name, the
// agents of that name each bottle has (by registration, runtime limit or
// usage).
func (b *Book) LimitSources() []LimitSource {
	out := sourcesAt(Scope{ScopeGlobal, "-"}, b.globalLayers())
	for _, slug := range b.Slugs() {
		bt := b.bottles[slug]
		out = append(out, sourcesAt(Scope{ScopeBottle, slug}, b.bottleLayers(bt))...)
		for _, a := range b.agentsOf(bt) {
			out = append(out, sourcesAt(Scope{ScopeAgent, slug + "/" + a}, b.agentLayers(bt, a))...)
		}
	}
	return out
}

// ScopeSources lists the limits of one scope with their sources, as
// LimitSources orders them; ErrNotFound for a bottle the book does not
// know.
func (b *Book) ScopeSources(s Scope) ([]LimitSource, error) {
	if s.Kind == ScopeGlobal {
		return sourcesAt(s, b.globalLayers()), nil
	}
	slug, agent, _ := strings.Cut(s.ID, "/")
	bt, ok := b.bottles[slug]
	if !ok {
		return nil, fmt.Errorf("%w: bottle %q", ErrNotFound, slug)
	}
	if s.Kind == ScopeAgent {
		return sourcesAt(s, b.agentLayers(bt, agent)), nil
	}
	return sourcesAt(s, b.bottleLayers(bt)), nil
}

// BottleLimits are the limits in force at a bottle's own scope, from
// every source (nil for a bottle the book does not know).
func (b *Book) BottleLimits(slug string) Limits { return b.force[slug].bottle.Clone() }

// sourcesAt lists a scope's layers as LimitSources, by provider, the one
// in force first.
func sourcesAt(s Scope, layers []layer) []LimitSource {
	providers := map[string]bool{}
	for _, l := range layers {
		for p := range l.limits {
			providers[p] = true
		}
	}
	var out []LimitSource
	for _, p := range sortedKeys(providers) {
		overridden := false
		for i := len(layers) - 1; i >= 0; i-- {
			set, ok := layers[i].limits[p]
			if !ok {
				continue
			}
			out = append(out, LimitSource{Scope: s, Provider: p, Limits: set, Source: layers[i].source,
				Origin: layers[i].origin, Overridden: overridden})
			overridden = true
		}
	}
	return out
}

// Without returns l without the given providers' limits (l itself is not
// changed).
func (l Limits) Without(providers ...string) Limits {
	c := l.Clone()
	for _, p := range providers {
		delete(c, p)
	}
	return c
}
