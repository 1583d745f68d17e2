package controller

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
)

// Register puts a registration in force: fields given replace the
// registered ones; budgets merge per provider, so a re-registration (say,
// from container labels) does not wipe limits an operator set at runtime.
// It answers with the bottle's view.
func (c *Core) Register(ctx context.Context, slug string, req api.BottleRequest) (api.Bottle, error) {
	b, err := c.bottleFromRequest(slug, req)
	if err != nil {
		return api.Bottle{}, err
	}
	if err := c.registerBottle(ctx, b); err != nil {
		return api.Bottle{}, err
	}
	return c.Bottle(slug)
}

// Forget removes a bottle from the ledger and the book; its reports stay
// in the ledger.
func (c *Core) Forget(ctx context.Context, slug string) error {
	if _, err := c.Bottle(slug); err != nil {
		return err
	}
	if err := c.ledger.DeleteBottle(ctx, slug); err != nil {
		return err
	}
	c.mu.Lock()
	c.book.Forget(slug)
	c.mu.Unlock()
	if err := c.audit(ctx, "bottle", slug, "forgotten (its reports stay in the ledger)"); err != nil {
		return err
	}
	c.publish("bottle", slug, nil)
	return nil
}

// Act starts an operator's action on a bottle, refusing one that makes no
// sense in the bottle's state.
func (c *Core) Act(ctx context.Context, slug string, kind budget.ActionKind, reason string) (budget.Action, error) {
	if err := c.checkAction(slug, kind); err != nil {
		return budget.Action{}, err
	}
	return c.start(ctx, slug, kind, reason, true)
}

// checkAction refuses actions that make no sense in the bottle's state.
func (c *Core) checkAction(slug string, kind budget.ActionKind) error {
	c.mu.Lock()
	b, ok := c.book.Bottle(slug)
	c.mu.Unlock()
	switch {
	case !ok:
		return fmt.Errorf("%w: bottle %q", budget.ErrNotFound, slug)
	case b.State == budget.Killed:
		return fmt.Errorf("%w: bottle %s was killed; nothing is left to act on", budget.ErrConflict, slug)
	case kind == budget.ActRestore && b.State != budget.CutOff && b.State != budget.Pending:
		return fmt.Errorf("%w: bottle %s is %s; restore only reverses a cutoff", budget.ErrConflict, slug, b.State)
	}
	return nil
}

// bottleFromRequest validates a registration and merges it over the
// bottle's current registration.
func (c *Core) bottleFromRequest(slug string, req api.BottleRequest) (budget.Bottle, error) {
	if err := budget.ValidateSlug("slug", slug); err != nil {
		return budget.Bottle{}, err
	}
	c.mu.Lock()
	b, ok := c.book.Bottle(slug)
	c.mu.Unlock()
	if !ok {
		b = budget.Bottle{Slug: slug, State: budget.Active, CreatedAt: c.now().UTC()}
	}
	b.Implicit = false
	if err := mergeRegistration(&b, req); err != nil {
		return b, err
	}
	return b, nil
}

func mergeRegistration(b *budget.Bottle, req api.BottleRequest) error {
	for field, v := range map[string]string{"agent": req.Agent, "parent": req.Parent} {
		if v != "" {
			if err := budget.ValidateName(field, v); err != nil {
				return err
			}
		}
	}
	if req.Agent != "" {
		b.Agent = req.Agent
	}
	if req.Name != "" {
		b.Name = req.Name
	}
	if req.Parent != "" {
		b.Parent = req.Parent
	}
	if req.Shutdown != "" {
		p, err := budget.ParsePolicy(req.Shutdown)
		if err != nil {
			return fmt.Errorf("shutdown: %w", err)
		}
		b.Shutdown = p
	}
	if len(req.Containers) > 0 {
		b.Containers = req.Containers
	}
	b.Budget = b.Budget.Merge(api.Limits(req.Budget))
	for agent, l := range req.AgentBudgets {
		if err := budget.ValidateName("agent_budgets", agent); err != nil {
			return err
		}
		if b.AgentBudgets == nil {
			b.AgentBudgets = map[string]budget.Limits{}
		}
		b.AgentBudgets[agent] = b.AgentBudgets[agent].Merge(api.Limits(l))
	}
	return nil
}

// registerBottle puts a registration (API or labels) in force and settles
// what it can change: the bottle's subtree (its own budgets, name and
// policy, and the limits of a new parent over it) and, when it moves with
// usage under it, the trees of the parents it leaves and joins, whose
// budgets that usage leaves or enters. A fresh bottle with nothing counted
// settles only itself (and any children that named it first), so
// registering costs what its subtree does, not what its tree does.
func (c *Core) registerBottle(ctx context.Context, b budget.Bottle) error {
	c.mu.Lock()
	old, _ := c.book.Bottle(b.Slug)
	touched := c.book.Trees(b.Slug)
	if line := c.book.Subtree(b.Slug); len(line) > 0 {
		touched = line
	}
	if old.Parent != b.Parent && c.book.HasUsageUnder(b.Slug) {
		touched = append(touched, c.book.Trees(b.Slug, old.Parent, b.Parent)...)
	}
	exempt := c.book.OperatorExempt(touched)
	c.mu.Unlock()
	if err := c.putBottle(ctx, b, true); err != nil {
		return err
	}
	c.mu.Lock()
	touched = append(touched, c.book.Subtree(b.Slug)...)
	c.mu.Unlock()
	slices.Sort(touched)
	c.settle(ctx, slices.Compact(touched), exempt)
	return nil
}

// putBottle registers a bottle in the book (which rejects parent cycles)
// and then the store; the book change is undone if the store refuses.
func (c *Core) putBottle(ctx context.Context, b budget.Bottle, announce bool) error {
	c.mu.Lock()
	old, existed := c.book.Bottle(b.Slug)
	if existed {
		// Registration never changes enforcement state: only actions do.
		b.State, b.StateReason, b.ByOperator = old.State, old.StateReason, old.ByOperator
	}
	err := c.book.Register(b)
	c.mu.Unlock()
	if err != nil {
		return err
	}
	if err := c.ledger.PutBottle(ctx, b); err != nil {
		c.mu.Lock()
		if existed {
			_ = c.book.Register(old) // it was registered before, so it still fits
		} else {
			c.book.Forget(b.Slug)
		}
		c.mu.Unlock()
		return fmt.Errorf("store bottle %s: %w", b.Slug, err)
	}
	c.publish("bottle", b.Slug, b)
	if announce {
		return c.audit(ctx, "bottle", b.Slug, describeBottle(b))
	}
	return nil
}

func describeBottle(b budget.Bottle) string {
	parts := []string{"registered"}
	if b.Parent != "" {
		parts = append(parts, "parent "+b.Parent)
	}
	if len(b.Budget) > 0 {
		parts = append(parts, "budget "+formatLimits(b.Budget))
	}
	if b.Shutdown != "" {
		parts = append(parts, "shutdown "+string(b.Shutdown))
	}
	return strings.Join(parts, ", ")
}

// formatLimits renders limits as "claude=1000000 codex=500000", sorted.
func formatLimits(l budget.Limits) string {
	parts := make([]string, 0, len(l))
	for p, n := range l {
		parts = append(parts, fmt.Sprintf("%s=%d", p, n))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// Budgets lists the limits in force at every scope that has any.
func (c *Core) Budgets() []api.Budget {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := []api.Budget{{Scope: "global", ID: "-", Limits: c.book.GlobalLimits()}}
	for _, b := range c.book.Bottles() {
		if len(b.Budget) > 0 {
			out = append(out, api.Budget{Scope: "bottle", ID: b.Slug, Limits: b.Budget})
		}
		agents := make([]string, 0, len(b.AgentBudgets))
		for a := range b.AgentBudgets {
			agents = append(agents, a)
		}
		sort.Strings(agents)
		for _, a := range agents {
			out = append(out, api.Budget{Scope: "agent", ID: b.Slug + "/" + a, Limits: b.AgentBudgets[a]})
		}
	}
	return out
}

// Budget shows the limits at one scope: global/-, bottle/<slug> or
// agent/<slug>/<agent>.
func (c *Core) Budget(scope, id string) (api.Budget, error) {
	kind, slug, agent, err := parseScope(scope, id)
	if err != nil {
		return api.Budget{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if kind == budget.ScopeGlobal {
		return api.Budget{Scope: scope, ID: id, Limits: c.book.GlobalLimits()}, nil
	}
	b, ok := c.book.Bottle(slug)
	if !ok {
		return api.Budget{}, fmt.Errorf("%w: bottle %q", budget.ErrNotFound, slug)
	}
	l := b.Budget
	if kind == budget.ScopeAgent {
		l = b.AgentBudgets[agent]
	}
	if l == nil {
		l = budget.Limits{}
	}
	return api.Budget{Scope: scope, ID: id, Limits: l}, nil
}

// SetLimits sets limits at a scope at runtime: the providers given change,
// the others stay. A bottle the daemon has not seen is recorded as an
// implicit bottle holding the budget, which governs it from its first
// report. What the change leaves exhausted acts at once; raising a cut-off
// bottle's governing budget above its usage restores it. It answers with
// the limits now at the scope.
func (c *Core) SetLimits(ctx context.Context, scope, id string, limits budget.Limits) (api.Budget, error) {
	kind, slug, agent, err := parseScope(scope, id)
	if err != nil {
		return api.Budget{}, err
	}
	touched, exempt, err := c.setLimits(ctx, kind, slug, agent, limits)
	if err != nil {
		return api.Budget{}, err
	}
	c.publish("budget", slug, map[string]any{"scope": scope, "id": id, "limits": limits})
	if err := c.audit(ctx, "budget", slug, fmt.Sprintf("%s/%s set to %s", scope, id, formatLimits(limits))); err != nil {
		return api.Budget{}, err
	}
	c.settle(ctx, touched, exempt)
	return c.Budget(scope, id)
}

// setLimits applies limits in the store and the book, and returns the
// bottles whose budgets that can change with the operator exemptions taken
// just before, for settle.
func (c *Core) setLimits(ctx context.Context, kind budget.ScopeKind, slug, agent string, l budget.Limits) ([]string, budget.Exemptions, error) {
	if kind == budget.ScopeGlobal {
		if err := c.ledger.PutBudget(ctx, kind, "-", l); err != nil {
			return nil, nil, err
		}
		c.mu.Lock()
		touched := c.book.Slugs()
		exempt := c.book.OperatorExempt(touched)
		c.book.SetGlobal(l)
		c.mu.Unlock()
		return touched, exempt, c.ledger.ClearWarned(ctx, kind, "-")
	}
	c.mu.Lock()
	if _, known := c.book.Bottle(slug); !known {
		unseen := budget.Bottle{Slug: slug, State: budget.Active, Implicit: true, CreatedAt: c.now().UTC()}
		if err := c.book.Register(unseen); err != nil {
			c.mu.Unlock()
			return nil, nil, err
		}
	}
	touched := []string{slug}
	if kind == budget.ScopeBottle {
		touched = c.book.Subtree(slug) // a bottle's budget covers its subtree
	}
	exempt := c.book.OperatorExempt(touched)
	err := c.book.SetBudget(slug, agent, l)
	c.mu.Unlock()
	if err != nil {
		return nil, nil, err
	}
	if err := c.saveBottle(ctx, slug); err != nil {
		return nil, nil, err
	}
	id := slug
	if kind == budget.ScopeAgent {
		id = slug + "/" + agent
	}
	return touched, exempt, c.ledger.ClearWarned(ctx, kind, id)
}
