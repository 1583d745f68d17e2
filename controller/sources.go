package controller

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
)

// The budget lifecycle (SPEC section 12): every limit knows its source —
// settings, runtime (API, CLI), registration, label — and at one scope the
// highest-ranking source's limit is in force: runtime beats registration
// and labels, which beat settings. The book keeps each source apart and
// resolves the limits in force when one changes; the ledger keeps runtime
// limits in budgets and a bottle's registration and labels on its row.

// Budgets lists every limit of every scope with its source, those in force
// and those they override.
func (c *Core) Budgets() []api.BudgetLimit {
	c.mu.Lock()
	sources := c.book.LimitSources()
	c.mu.Unlock()
	return api.BudgetLimits(sources)
}

// Budget shows one scope: global/-, bottle/<slug> or agent/<slug>/<agent>.
func (c *Core) Budget(scope, id string) (api.Budget, error) {
	s, _, _, err := scopeOf(scope, id)
	if err != nil {
		return api.Budget{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.budgetLocked(s)
}

// budgetLocked is one scope's limits in force and every limit with its
// source. c.mu must be held.
func (c *Core) budgetLocked(s budget.Scope) (api.Budget, error) {
	sources, err := c.book.ScopeSources(s)
	if err != nil {
		return api.Budget{}, err
	}
	out := api.Budget{Scope: string(s.Kind), ID: s.ID, Limits: budget.Limits{}, Sources: api.BudgetLimits(sources)}
	for _, ls := range sources {
		if !ls.Overridden {
			out.Limits[ls.Provider] = ls.Limits
		}
	}
	return out, nil
}

// scopeOf checks a scope as the routes name it (parseScope) and returns
// it with the id normalised ("-" for global), its bottle and agent.
func scopeOf(scope, id string) (s budget.Scope, slug, agent string, err error) {
	kind, slug, agent, err := parseScope(scope, id)
	if err != nil {
		return s, "", "", err
	}
	if kind == budget.ScopeGlobal {
		id = "-"
	}
	return budget.Scope{Kind: kind, ID: id}, slug, agent, nil
}

// SetLimits sets runtime limits at a scope: the providers given change,
// the others stay. They are in force at once, over the scope's
// registration, labels and settings. A bottle the daemon has not seen is
// recorded as an implicit bottle, which the limits govern from its first
// report. What the change leaves exhausted acts at once; raising a
// cut-off bottle's governing budget above its usage restores it. It
// answers with the scope as it is now.
func (c *Core) SetLimits(ctx context.Context, scope, id string, limits budget.Limits) (api.Budget, error) {
	s, slug, _, err := scopeOf(scope, id)
	if err != nil {
		return api.Budget{}, err
	}
	err = c.withWindows(ctx, []budget.Limits{limits}, func() error {
		touched, exempt, err := c.putLimits(ctx, s, slug, limits)
		if err != nil {
			return err
		}
		return c.limitsChanged(ctx, s, slug, touched, exempt, fmt.Sprintf("%s/%s set to %s", s.Kind, s.ID, formatLimits(limits)),
			map[string]any{"scope": s.Kind, "id": s.ID, "limits": limits})
	})
	if err != nil {
		return api.Budget{}, err
	}
	return c.Budget(scope, id)
}

// limitsChanged finishes a change of a scope's limits: its warn marks go
// (a new limit warns afresh), the change is published and audited, and
// what it leaves exhausted or with room again is settled.
func (c *Core) limitsChanged(ctx context.Context, s budget.Scope, slug string, touched []string, exempt budget.Exemptions, detail string, event map[string]any) error {
	if err := c.ledger.ClearWarned(ctx, s.Kind, s.ID); err != nil {
		return err
	}
	c.publish("budget", slug, event)
	if err := c.audit(ctx, "budget", slug, detail); err != nil {
		return err
	}
	c.settle(ctx, touched, exempt)
	return nil
}

// putLimits stores runtime limits and puts them in the book as one step
// ordered with every save of a bottle (under saveMu), so that the ledger
// ends up holding what memory holds. It returns the bottles whose budgets
// that can change, with the operator exemptions taken just before, for
// settle.
func (c *Core) putLimits(ctx context.Context, s budget.Scope, slug string, l budget.Limits) ([]string, budget.Exemptions, error) {
	c.saveMu.Lock()
	defer c.saveMu.Unlock()
	if err := c.ledger.PutBudget(ctx, s.Kind, s.ID, l); err != nil {
		return nil, nil, err
	}
	c.mu.Lock()
	unseen := false
	if _, known := c.book.Bottle(slug); !known && s.Kind != budget.ScopeGlobal {
		b := budget.Bottle{Slug: slug, State: budget.Active, Implicit: true, CreatedAt: c.now().UTC()}
		if err := c.book.Register(b); err != nil {
			c.mu.Unlock()
			return nil, nil, err
		}
		unseen = true
	}
	touched := c.touchedLocked(s, slug)
	exempt := c.book.OperatorExempt(touched)
	c.book.SetRuntime(s, l)
	c.mu.Unlock()
	if unseen {
		if err := c.saveBottleLocked(ctx, slug); err != nil {
			return nil, nil, err
		}
	}
	return touched, exempt, nil
}

// touchedLocked lists the bottles whose budgets a change of the limits at
// s can move: every bottle for the global scope, a bottle's subtree for
// its own (a bottle's budget covers its subtree), the bottle for one of
// its agents. c.mu must be held.
func (c *Core) touchedLocked(s budget.Scope, slug string) []string {
	switch s.Kind {
	case budget.ScopeGlobal:
		return c.book.Slugs()
	case budget.ScopeBottle:
		return c.book.Subtree(slug)
	}
	return []string{slug}
}

// RemoveLimits removes, at a scope, the limit in force for each provider
// given (every provider when none is): a runtime limit, or, where there is
// none, the bottle's registration's. What it overrode is in force again —
// a registration's or a label's limit, the settings', or none. A limit
// from settings or a label is changed at its source: ErrConflict naming
// it. A provider with no limit at the scope is ErrNotFound. Nothing is
// removed unless every provider asked for can be. Like any change, what
// it leaves exhausted acts and what it leaves with room is restored. It
// answers with the scope as it is now and what was removed.
func (c *Core) RemoveLimits(ctx context.Context, scope, id string, providers []string) (api.Budget, error) {
	s, slug, agent, err := scopeOf(scope, id)
	if err != nil {
		return api.Budget{}, err
	}
	for _, p := range providers {
		if err := budget.ValidateName("provider", p); err != nil {
			return api.Budget{}, err
		}
	}
	removed, touched, exempt, err := c.removeLimits(ctx, s, slug, agent, providers)
	if err != nil {
		return api.Budget{}, err
	}
	err = c.limitsChanged(ctx, s, slug, touched, exempt, fmt.Sprintf("%s/%s removed %s", s.Kind, s.ID, describeRemoved(removed)),
		map[string]any{"scope": s.Kind, "id": s.ID, "removed": providersOf(removed)})
	if err != nil {
		return api.Budget{}, err
	}
	c.mu.Lock()
	out, err := c.budgetLocked(s)
	c.mu.Unlock()
	out.Removed = api.BudgetLimits(removed)
	return out, err
}

// removeLimits picks what a removal takes away (removable) and takes it
// from the ledger and the book, under saveMu: the runtime limits from
// budgets, the registration's from the bottle's row. It returns what it
// removed and the bottles the change can touch, with the operator
// exemptions taken before it.
func (c *Core) removeLimits(ctx context.Context, s budget.Scope, slug, agent string, providers []string) (removed []budget.LimitSource, touched []string, exempt budget.Exemptions, err error) {
	c.saveMu.Lock()
	defer c.saveMu.Unlock()
	c.mu.Lock()
	sources, err := c.book.ScopeSources(s)
	if err == nil {
		removed, err = removable(s, sources, providers)
	}
	if err == nil {
		touched = c.touchedLocked(s, slug)
		exempt = c.book.OperatorExempt(touched)
	}
	c.mu.Unlock()
	if err != nil {
		return nil, nil, nil, err
	}
	runtime, registered := bySource(removed)
	if len(runtime) > 0 {
		if err := c.ledger.DeleteBudget(ctx, s.Kind, s.ID, runtime...); err != nil {
			return nil, nil, nil, err
		}
		c.mu.Lock()
		c.book.RemoveRuntime(s, runtime...)
		c.mu.Unlock()
	}
	if len(registered) > 0 {
		_, err := c.putBottleLocked(ctx, slug, func(b *budget.Bottle) error {
			if s.Kind == budget.ScopeAgent {
				b.AgentBudgets[agent] = b.AgentBudgets[agent].Without(registered...)
				if len(b.AgentBudgets[agent]) == 0 {
					delete(b.AgentBudgets, agent)
				}
				return nil
			}
			b.Budget = b.Budget.Without(registered...)
			return nil
		})
		if err != nil {
			return nil, nil, nil, err
		}
	}
	return removed, touched, exempt, nil
}

// removable picks the limit in force at s for each provider (every
// provider with a limit there when none is given), each of which must
// come from a source that can be removed. With no provider given, the
// providers whose limit comes from settings or a label are left as they
// are, unless nothing else is there.
func removable(s budget.Scope, sources []budget.LimitSource, providers []string) ([]budget.LimitSource, error) {
	inForce := map[string]budget.LimitSource{}
	var all []string
	for _, ls := range sources {
		if !ls.Overridden {
			inForce[ls.Provider] = ls
			all = append(all, ls.Provider)
		}
	}
	name := scopePath(s)
	if len(providers) == 0 {
		if len(all) == 0 {
			return nil, fmt.Errorf("%w: no limit at %s", budget.ErrNotFound, name)
		}
		var out, fixed []budget.LimitSource
		for _, p := range all {
			if inForce[p].Source.Removable() {
				out = append(out, inForce[p])
			} else {
				fixed = append(fixed, inForce[p])
			}
		}
		if len(out) == 0 {
			return nil, atItsSource(s, fixed)
		}
		return out, nil
	}
	providers = slices.Compact(slices.Sorted(slices.Values(providers)))
	out := make([]budget.LimitSource, 0, len(providers))
	for _, p := range providers {
		ls, ok := inForce[p]
		if !ok {
			return nil, fmt.Errorf("%w: no %s limit at %s", budget.ErrNotFound, p, name)
		}
		if !ls.Source.Removable() {
			return nil, atItsSource(s, []budget.LimitSource{ls})
		}
		out = append(out, ls)
	}
	return out, nil
}

// atItsSource is the conflict of removing limits from settings or labels:
// it names where each is changed, and how to override it meanwhile.
func atItsSource(s budget.Scope, fixed []budget.LimitSource) error {
	parts := make([]string, len(fixed))
	for i, ls := range fixed {
		parts[i] = fmt.Sprintf("%s at %s comes from %s", ls.Provider, scopePath(s), ls.Origin)
	}
	it := "it"
	if len(fixed) > 1 {
		it = "them"
	}
	return fmt.Errorf("%w: %s; change %s there, or override %s at runtime (bottlecap budget set %s %s=N)",
		budget.ErrConflict, strings.Join(parts, "; "), it, it, scopePath(s), fixed[0].Provider)
}

// scopePath writes a scope as the command line and the routes name it:
// global, bottle/<slug>, agent/<slug>/<agent>.
func scopePath(s budget.Scope) string {
	if s.Kind == budget.ScopeGlobal {
		return "global"
	}
	return string(s.Kind) + "/" + s.ID
}

// bySource splits the providers of removed limits into runtime and
// registration ones.
func bySource(removed []budget.LimitSource) (runtime, registered []string) {
	for _, ls := range removed {
		if ls.Source == budget.SourceRuntime {
			runtime = append(runtime, ls.Provider)
		} else {
			registered = append(registered, ls.Provider)
		}
	}
	return runtime, registered
}

func providersOf(ls []budget.LimitSource) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.Provider
	}
	return out
}

// describeRemoved writes removed limits for the audit log:
// "claude=1000000 (runtime), codex=5000000/day (registration)".
func describeRemoved(removed []budget.LimitSource) string {
	parts := make([]string, len(removed))
	for i, ls := range removed {
		parts[i] = fmt.Sprintf("%s=%s (%s)", ls.Provider, ls.Limits, ls.Source)
	}
	return strings.Join(parts, ", ")
}
