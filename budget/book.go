package budget

import (
	"fmt"
	"sort"
	"time"
)

// Book is the in-memory picture the gate answers from: the bottle forest,
// runtime budgets, the settings, and usage counters per agent, per bottle
// subtree and per host. It is a plain value with no locking and no I/O; the
// daemon guards it with a mutex and rebuilds it from the ledger on start.
//
// Subtree sums are kept incrementally: registering, re-parenting or
// forgetting a bottle moves its subtree's sums along its lineage only, so
// the work is proportional to the bottle's depth (and, for a bottle whose
// children registered first, to those children), never to the forest.
type Book struct {
	settings *Settings
	bottles  map[string]*Bottle
	// runtime are the limits set at runtime; force and globalForce are
	// the limits in force, resolved from every source when one changes
	// (sources.go), so that the gate looks each scope's limit up once.
	runtime     runtimeLimits
	force       map[string]forced
	globalForce Limits
	// containers indexes registered container ids by their first 12
	// characters, for BottleOfContainer.
	containers map[string]containerRef
	// children indexes registered bottles by the parent they name, known
	// or not, so a bottle registering after its children finds them.
	children map[string]map[string]struct{}

	// used counts committed usage; held counts the tokens allowances
	// hold (SPEC section 11). Both are kept the same way, so that a hold
	// weighs on an agent, a bottle's subtree and the host exactly as the
	// usage it stands for will.
	used, held counters
	// windows count the usage of every window a limit in force uses
	// (windows.go), as of now, the book's clock: it moves with Advance
	// and with the time of each report recorded.
	windows []*windowCount
	now     time.Time
	// fleet is the budget shared across hosts (fleet.go); nil without one.
	fleet *fleetBook

	sumMoves int // subtree sums changed by registration (a test hook)
}

// NewBook returns an empty book under the given settings.
func NewBook(s *Settings) *Book {
	if s == nil {
		s = DefaultSettings()
	}
	b := &Book{
		settings:   s,
		bottles:    map[string]*Bottle{},
		runtime:    newRuntimeLimits(),
		force:      map[string]forced{},
		containers: map[string]containerRef{},
		children:   map[string]map[string]struct{}{},
		used:       newCounters(),
		held:       newCounters(),
	}
	b.rescanWindows(false)
	b.resolveGlobal()
	b.setFleet(s.Fleet)
	return b
}

// Settings returns the settings in force.
func (b *Book) Settings() *Settings { return b.settings }

// SetSettings replaces the settings (after a reload). Windows their
// limits use that the book did not keep start empty, and calendar windows
// start again when the timezone moved: a daemon loads their usage from the
// ledger (NewWindowsFor, LoadWindows) in the same step.
func (b *Book) SetSettings(s *Settings) {
	moved := s.location().String() != b.settings.location().String()
	b.settings = s
	b.rescanWindows(moved)
	b.resolveAll()
	b.setFleet(s.Fleet)
}

// GlobalLimits returns the global limits in force: settings overridden by
// runtime values.
func (b *Book) GlobalLimits() Limits { return b.globalForce.Clone() }

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
	b.keepWindows(bt.Budget, bt.LabelBudget)
	for _, l := range bt.AgentBudgets {
		b.keepWindows(l)
	}
	b.resolveBottle(bt.Slug)
	b.indexContainers(old, &bt)
	switch {
	case !existed:
		b.attach(&bt)
	case old.Parent != bt.Parent:
		b.moveSums(old.Parent, bt.Slug, -1)
		b.unlink(old.Parent, bt.Slug)
		b.link(bt.Parent, bt.Slug)
		b.moveSums(bt.Parent, bt.Slug, +1)
	}
	return nil
}

// kinds are the book's counts — lifetime usage, holds and each window's
// usage — which registration moves alike.
func (b *Book) kinds() []*counters {
	out := make([]*counters, 0, 2+len(b.windows))
	out = append(out, &b.used, &b.held)
	for _, wc := range b.windows {
		out = append(out, &wc.used)
	}
	return out
}

// attach gives a newly registered bottle its subtree sums (its own usage
// and holds, and those of the registered children that named it before it
// came) and adds them to its ancestors.
func (b *Book) attach(bt *Bottle) {
	for _, k := range b.kinds() {
		t := k.tally(bt.Slug, true)
		t.subtree = make(map[string]int64, len(t.own))
		for p, n := range t.own {
			t.subtree[p] = n
		}
		for c := range b.children[bt.Slug] {
			for p, n := range k.subtree(c) {
				t.subtree[p] = SatAdd(t.subtree[p], n)
				b.sumMoves++
			}
		}
	}
	b.link(bt.Parent, bt.Slug)
	b.moveSums(bt.Parent, bt.Slug, +1)
}

// moveSums adds (sign +1) or removes (-1) slug's subtree sums, of usage
// and of holds, to or from parent and each of parent's registered
// ancestors.
func (b *Book) moveSums(parent, slug string, sign int64) {
	for _, k := range b.kinds() {
		sums := k.subtree(slug)
		if len(sums) == 0 {
			continue
		}
		for _, s := range b.lineage(parent) {
			t := k.tally(s, true)
			for p, n := range sums {
				t.subtree[p] = moveSum(t.subtree[p], n, sign)
				b.sumMoves++
			}
		}
	}
}

// moveSum adds or removes n, saturating at both ends (a sum clamped at
// MaxCounted cannot be taken apart exactly; it never goes negative).
func moveSum(sum, n, sign int64) int64 {
	if sign > 0 {
		return SatAdd(sum, n)
	}
	return max(sum-n, 0)
}

func (b *Book) link(parent, slug string) {
	if parent == "" {
		return
	}
	if b.children[parent] == nil {
		b.children[parent] = map[string]struct{}{}
	}
	b.children[parent][slug] = struct{}{}
}

func (b *Book) unlink(parent, slug string) {
	delete(b.children[parent], slug)
	if len(b.children[parent]) == 0 {
		delete(b.children, parent)
	}
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

// Forget removes a bottle and its runtime limits (the ledger drops them
// with its row). Its usage stays in the global count (the ledger keeps it)
// but no longer counts toward its former ancestors; bottles that named it
// as their parent stay registered, as roots, until it returns.
func (b *Book) Forget(slug string) {
	old, ok := b.bottles[slug]
	if !ok {
		return
	}
	b.runtime.forget(slug)
	delete(b.force, slug)
	b.indexContainers(old, nil)
	b.moveSums(old.Parent, slug, -1)
	b.unlink(old.Parent, slug)
	delete(b.bottles, slug)
	for _, k := range b.kinds() {
		k.detach(slug)
	}
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

// SetState changes a known bottle's state, recording why and by whom. The
// rate guard's mark stays through the steps of its own action (pending,
// then done) and goes as soon as an operator takes over or the bottle runs
// again (see TripRate).
func (b *Book) SetState(slug string, s State, reason string, byOperator bool) {
	if bt, ok := b.bottles[slug]; ok {
		bt.State, bt.StateReason, bt.ByOperator = s, reason, byOperator
		if byOperator || !s.Blocked() {
			bt.ByRateGuard = false
		}
	}
}

// Add counts tokens for (bottle, agent, provider) as lifetime usage
// without looking for crossings: it is how the book is rebuilt from the
// ledger's aggregates (windows are loaded with LoadWindows).
// Every counter saturates at MaxCounted rather than wrapping.
func (b *Book) Add(bottle, agent, provider string, tokens int64) {
	b.used.add(bottle, agent, provider, tokens, b.lineage(bottle))
}

// lineage is the bottle itself (when registered) followed by its registered
// ancestors, nearest first. Register refuses cycles, so the walk ends; the
// bound only guards against a book that was corrupted some other way.
func (b *Book) lineage(slug string) []string {
	var out []string
	for s := slug; s != "" && len(out) <= len(b.bottles); {
		bt, ok := b.bottles[s]
		if !ok {
			break
		}
		out = append(out, s)
		s = bt.Parent
	}
	return out
}

// Used returns the counted usage of one agent, one bottle's subtree and the
// whole host for a provider.
func (b *Book) Used(bottle, agent, provider string) (agentUsed, subtree, global int64) {
	return b.used.read(bottle, agent, provider)
}

// UsedIn is Used for the current period of a window (lifetime usage for
// LifeWindow; zero for a window no limit uses).
func (b *Book) UsedIn(w Window, bottle, agent, provider string) (agentUsed, subtree, global int64) {
	return b.count(w).read(bottle, agent, provider)
}

// Subtree lists a registered bottle and its registered descendants, the
// bottle first; nothing for an unknown slug.
func (b *Book) Subtree(slug string) []string {
	if _, ok := b.bottles[slug]; !ok {
		return nil
	}
	out := []string{slug}
	for i := 0; i < len(out) && len(out) <= len(b.bottles); i++ {
		for c := range b.children[out[i]] {
			out = append(out, c)
		}
	}
	return out
}

// Trees lists every registered bottle in the trees the slugs belong to:
// the subtree of each one's topmost registered ancestor, or, for a slug not
// registered, the subtrees of the bottles that name it as their parent.
// These are the bottles whose budgets a change to one of the slugs (its
// limits, its parent) can move.
func (b *Book) Trees(slugs ...string) []string {
	seen := map[string]bool{}
	var out []string
	add := func(list []string) {
		for _, s := range list {
			if !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
	}
	for _, slug := range slugs {
		if slug == "" || seen[slug] {
			continue
		}
		if line := b.lineage(slug); len(line) > 0 {
			add(b.Subtree(line[len(line)-1]))
			continue
		}
		for c := range b.children[slug] {
			add(b.Subtree(c))
		}
	}
	sort.Strings(out)
	return out
}

// HasUsageUnder reports whether anything has been counted for the bottle
// or the registered bottles below it: only then can moving it to another
// parent change its old or new ancestors' budgets.
func (b *Book) HasUsageUnder(slug string) bool {
	nonZero := func(m map[string]int64) bool {
		for _, n := range m {
			if n != 0 {
				return true
			}
		}
		return false
	}
	t, ok := b.used.tallies[slug]
	if _, registered := b.bottles[slug]; registered {
		return ok && nonZero(t.subtree)
	}
	if ok && nonZero(t.own) {
		return true
	}
	for c := range b.children[slug] {
		if nonZero(b.used.subtree(c)) {
			return true
		}
	}
	return false
}

// Slugs lists every registered bottle, sorted.
func (b *Book) Slugs() []string {
	out := make([]string, 0, len(b.bottles))
	for s := range b.bottles {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// Providers returns every provider with usage, a hold or a limit
// anywhere, sorted.
func (b *Book) Providers() []string {
	set := map[string]bool{}
	for _, k := range b.kinds() {
		for p := range k.global {
			set[p] = true
		}
	}
	for p := range b.GlobalLimits() {
		set[p] = true
	}
	for _, p := range b.FleetProviders() {
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
