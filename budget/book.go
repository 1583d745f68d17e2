package budget

import (
	"fmt"
	"sort"
)

// Book is the in-memory picture the gate answers from: the bottle forest,
// runtime budgets, the settings, and usage counters per agent, per bottle
// subtree and per host. It is a plain value with no locking and no I/O; the
// daemon guards it with a mutex and rebuilds it from the ledger on start.
type Book struct {
	settings *Settings
	global   Limits // runtime global limits, over settings.Budget
	bottles  map[string]*Bottle
	// containers indexes registered container ids by their first 12
	// characters, for BottleOfContainer.
	containers map[string]containerRef

	agentUsed   map[agentKey]int64  // (bottle, agent, provider)
	ownUsed     map[bottleKey]int64 // (bottle, provider), the bottle's own reports
	subtreeUsed map[bottleKey]int64 // (bottle, provider), the bottle and its registered descendants
	globalUsed  map[string]int64    // provider
}

type agentKey struct{ bottle, agent, provider string }
type bottleKey struct{ bottle, provider string }

// NewBook returns an empty book under the given settings.
func NewBook(s *Settings) *Book {
	if s == nil {
		s = DefaultSettings()
	}
	return &Book{
		settings:    s,
		global:      Limits{},
		bottles:     map[string]*Bottle{},
		containers:  map[string]containerRef{},
		agentUsed:   map[agentKey]int64{},
		ownUsed:     map[bottleKey]int64{},
		subtreeUsed: map[bottleKey]int64{},
		globalUsed:  map[string]int64{},
	}
}

// Settings returns the settings in force.
func (b *Book) Settings() *Settings { return b.settings }

// SetSettings replaces the settings (after a reload).
func (b *Book) SetSettings(s *Settings) { b.settings = s }

// SetGlobal sets runtime global limits for the providers in l.
func (b *Book) SetGlobal(l Limits) { b.global = b.global.Merge(l) }

// GlobalLimits returns the global limits in force: settings overridden by
// runtime values.
func (b *Book) GlobalLimits() Limits { return b.settings.Budget.Merge(b.global) }

// Register adds or replaces a bottle. A parent chain that would lead back to
// the bottle is rejected with ErrConflict. The parent need not be known yet:
// lineage is resolved whenever the parent registers.
func (b *Book) Register(bt Bottle) error {
	if err := ValidateSlug("slug", bt.Slug); err != nil {
		return err
	}
	if bt.Parent != "" {
		if err := b.checkCycle(bt.Slug, bt.Parent); err != nil {
			return err
		}
	}
	if bt.State == "" {
		bt.State = Active
	}
	old, existed := b.bottles[bt.Slug]
	b.bottles[bt.Slug] = &bt
	b.indexContainers(old, &bt)
	if !existed || old.Parent != bt.Parent || old.Implicit != bt.Implicit {
		b.rebuildSubtrees()
	}
	return nil
}

func (b *Book) checkCycle(slug, parent string) error {
	seen := map[string]bool{}
	for p := parent; p != ""; {
		if p == slug {
			return fmt.Errorf("%w: parent %q of %q: bottles would form a cycle", ErrConflict, parent, slug)
		}
		if seen[p] {
			return nil // an existing cycle elsewhere cannot be registered; stop walking
		}
		seen[p] = true
		anc, ok := b.bottles[p]
		if !ok {
			return nil
		}
		p = anc.Parent
	}
	return nil
}

// Forget removes a bottle. Its usage stays in the global count (the ledger
// keeps it) but no longer counts toward its former ancestors.
func (b *Book) Forget(slug string) {
	old, ok := b.bottles[slug]
	if !ok {
		return
	}
	b.indexContainers(old, nil)
	delete(b.bottles, slug)
	b.rebuildSubtrees()
}

// Bottle returns a copy of one bottle.
func (b *Book) Bottle(slug string) (Bottle, bool) {
	bt, ok := b.bottles[slug]
	if !ok {
		return Bottle{}, false
	}
	return *bt, true
}

// Bottles returns copies of every bottle, ordered by slug.
func (b *Book) Bottles() []Bottle {
	out := make([]Bottle, 0, len(b.bottles))
	for _, bt := range b.bottles {
		out = append(out, *bt)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Slug < out[j].Slug })
	return out
}

// SetState changes a known bottle's state, recording why and by whom.
func (b *Book) SetState(slug string, s State, reason string, byOperator bool) {
	if bt, ok := b.bottles[slug]; ok {
		bt.State, bt.StateReason, bt.ByOperator = s, reason, byOperator
	}
}

// SetBudget sets a bottle's own limits (ScopeBottle) or one agent's limits
// within it (ScopeAgent) for the providers in l.
func (b *Book) SetBudget(slug, agent string, l Limits) error {
	bt, ok := b.bottles[slug]
	if !ok {
		return fmt.Errorf("%w: bottle %q", ErrNotFound, slug)
	}
	if agent == "" {
		bt.Budget = bt.Budget.Merge(l)
		return nil
	}
	if bt.AgentBudgets == nil {
		bt.AgentBudgets = map[string]Limits{}
	}
	bt.AgentBudgets[agent] = bt.AgentBudgets[agent].Merge(l)
	return nil
}

// Add counts tokens for (bottle, agent, provider) without looking for
// crossings: it is how the book is rebuilt from the ledger's aggregates.
// Every counter saturates at MaxCounted rather than wrapping.
func (b *Book) Add(bottle, agent, provider string, tokens int64) {
	ak, own := agentKey{bottle, agent, provider}, bottleKey{bottle, provider}
	b.agentUsed[ak] = SatAdd(b.agentUsed[ak], tokens)
	b.ownUsed[own] = SatAdd(b.ownUsed[own], tokens)
	b.globalUsed[provider] = SatAdd(b.globalUsed[provider], tokens)
	for _, s := range b.lineage(bottle) {
		sk := bottleKey{s, provider}
		b.subtreeUsed[sk] = SatAdd(b.subtreeUsed[sk], tokens)
	}
}

// lineage is the bottle itself (when registered) followed by its registered
// ancestors, nearest first.
func (b *Book) lineage(slug string) []string {
	var out []string
	for s := slug; s != ""; {
		bt, ok := b.bottles[s]
		if !ok || containsString(out, s) {
			break
		}
		out = append(out, s)
		s = bt.Parent
	}
	return out
}

func (b *Book) rebuildSubtrees() {
	b.subtreeUsed = map[bottleKey]int64{}
	for k, n := range b.ownUsed {
		for _, s := range b.lineage(k.bottle) {
			sk := bottleKey{s, k.provider}
			b.subtreeUsed[sk] = SatAdd(b.subtreeUsed[sk], n)
		}
	}
}

// Used returns the counted usage of one agent, one bottle's subtree and the
// whole host for a provider.
func (b *Book) Used(bottle, agent, provider string) (agentUsed, subtree, global int64) {
	return b.agentUsed[agentKey{bottle, agent, provider}],
		b.subtreeUsed[bottleKey{bottle, provider}],
		b.globalUsed[provider]
}

// Providers returns every provider with usage or a limit anywhere, sorted.
func (b *Book) Providers() []string {
	set := map[string]bool{}
	for p := range b.globalUsed {
		set[p] = true
	}
	for p := range b.GlobalLimits() {
		set[p] = true
	}
	for _, bt := range b.bottles {
		for p := range b.bottleLimits(bt) {
			set[p] = true
		}
	}
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
