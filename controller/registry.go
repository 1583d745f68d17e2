package controller

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
)

// Register puts a registration in force: fields given replace the
// registered ones; budgets merge per provider (a provider's limits given
// replace those its registration or its labels set before). Runtime limits
// are another source, which a registration never changes: they stay in
// force over it.
// The registration is merged over the bottle's current one and stored in
// one step (see putBottle), so concurrent registrations never lose each
// other's fields. It answers with the bottle's view.
func (c *Core) Register(ctx context.Context, slug string, req api.BottleRequest) (api.Bottle, error) {
	if err := budget.ValidateSlug("slug", slug); err != nil {
		return api.Bottle{}, err
	}
	limits := []budget.Limits{req.Budget}
	for _, l := range req.AgentBudgets {
		limits = append(limits, l)
	}
	err := c.withWindows(ctx, limits, func() error {
		return c.registerBottle(ctx, slug, func(b *budget.Bottle) error {
			b.Implicit = false
			return mergeRegistration(b, req)
		})
	})
	if err != nil {
		return api.Bottle{}, err
	}
	return c.Bottle(slug)
}

// Forget removes a bottle from the ledger and the book, and closes its
// allowances; its reports stay in the ledger. It is ordered with the bottle's saves, so that no save
// brings the row back after the delete while the book has forgotten it.
func (c *Core) Forget(ctx context.Context, slug string) error {
	if err := c.forget(ctx, slug); err != nil {
		return err
	}
	if err := c.audit(ctx, "bottle", slug, "forgotten (its reports stay in the ledger)"); err != nil {
		return err
	}
	c.publish("bottle", slug, nil)
	return nil
}

func (c *Core) forget(ctx context.Context, slug string) error {
	c.saveMu.Lock()
	defer c.saveMu.Unlock()
	if _, err := c.bottleCopy(slug); err != nil {
		return err
	}
	if err := c.ledger.DeleteBottle(ctx, slug); err != nil {
		return err
	}
	c.mu.Lock()
	c.book.Forget(slug)
	c.dropBottleLocked(slug)
	c.dropRateLocked(slug)
	c.mu.Unlock()
	c.metrics.tokens.forget(slug)
	return nil
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
	rates, err := parseRates(req.Rate)
	if err != nil {
		return err
	}
	b.Rate = b.Rate.Merge(rates)
	b.Budget, b.LabelBudget = b.Budget.Merge(req.Budget), b.LabelBudget.Without(providers(req.Budget)...)
	for agent, l := range req.AgentBudgets {
		if err := budget.ValidateName("agent_budgets", agent); err != nil {
			return err
		}
		if b.AgentBudgets == nil {
			b.AgentBudgets = map[string]budget.Limits{}
		}
		b.AgentBudgets[agent] = b.AgentBudgets[agent].Merge(l)
	}
	return nil
}

// errUnchanged is what a putBottle change returns to leave the bottle as
// it is.
var errUnchanged = errors.New("unchanged")

// registered is what putBottle did: the bottle before and after, and the
// bottles whose budgets the change can touch with their operator
// exemptions taken just before it.
type registered struct {
	old, b  budget.Bottle
	touched []string
	exempt  budget.Exemptions
}

// registerBottle puts a registration (API or labels) in force and settles
// what it can change: the bottle's subtree (its own budgets, name and
// policy, and the limits of a new parent over it) and, when it moves with
// usage under it, the trees of the parents it leaves and joins, whose
// budgets that usage leaves or enters. A fresh bottle with nothing counted
// settles only itself (and any children that named it first), so
// registering costs what its subtree does, not what its tree does.
func (c *Core) registerBottle(ctx context.Context, slug string, change func(*budget.Bottle) error) error {
	reg, err := c.putBottle(ctx, slug, change)
	if errors.Is(err, errUnchanged) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := c.audit(ctx, "bottle", slug, describeBottle(reg.b)); err != nil {
		return err
	}
	c.mu.Lock()
	touched := append(reg.touched, c.book.Subtree(slug)...)
	c.mu.Unlock()
	slices.Sort(touched)
	c.settle(ctx, slices.Compact(touched), reg.exempt)
	return nil
}

// putBottle is a registration's read-modify-write, in one step: change
// edits the book's current copy of the bottle (a fresh active one if the
// book has none; errUnchanged leaves it be), the book takes the result
// (rejecting parent cycles) and the ledger stores it, all under saveMu,
// so that no other save of the bottle comes between the read and the
// write. Registration never changes enforcement state: only actions do,
// and change sees the state only to keep it. The book change is undone if
// the ledger refuses it, keeping any state an action set meanwhile.
func (c *Core) putBottle(ctx context.Context, slug string, change func(*budget.Bottle) error) (registered, error) {
	c.saveMu.Lock()
	defer c.saveMu.Unlock()
	return c.putBottleLocked(ctx, slug, change)
}

// putBottleLocked is putBottle with saveMu held.
func (c *Core) putBottleLocked(ctx context.Context, slug string, change func(*budget.Bottle) error) (registered, error) {
	reg, existed, err := c.registerLocked(slug, change)
	if err != nil {
		return reg, err
	}
	if err := c.ledger.PutBottle(ctx, reg.b); err != nil {
		c.mu.Lock()
		cur, _ := c.book.Bottle(slug)
		if existed {
			old := reg.old
			old.State, old.StateReason, old.ByOperator, old.ByRateGuard = cur.State, cur.StateReason, cur.ByOperator, cur.ByRateGuard
			_ = c.book.Register(old) // it was registered before, so it still fits
		} else {
			c.book.Forget(slug)
		}
		c.mu.Unlock()
		return reg, fmt.Errorf("store bottle %s: %w", slug, err)
	}
	c.publish("bottle", slug, reg.b)
	return reg, nil
}

// registerLocked applies change to the bottle in the book under c.mu.
func (c *Core) registerLocked(slug string, change func(*budget.Bottle) error) (reg registered, existed bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	reg.old, existed = c.book.Bottle(slug)
	b := reg.old
	if !existed {
		b = budget.Bottle{Slug: slug, State: budget.Active, CreatedAt: c.now().UTC()}
	}
	// The book's copy shares its maps and slices: change edits clones.
	b.AgentBudgets = maps.Clone(b.AgentBudgets)
	b.Containers = slices.Clone(b.Containers)
	if err := change(&b); err != nil {
		return reg, existed, err
	}
	b.State, b.StateReason, b.ByOperator, b.ByRateGuard = reg.old.State, reg.old.StateReason, reg.old.ByOperator, reg.old.ByRateGuard
	if !existed {
		b.State, b.StateReason, b.ByOperator, b.ByRateGuard = budget.Active, "", false, false
	}
	reg.touched = c.book.Trees(slug)
	if line := c.book.Subtree(slug); len(line) > 0 {
		reg.touched = line
	}
	if reg.old.Parent != b.Parent && c.book.HasUsageUnder(slug) {
		reg.touched = append(reg.touched, c.book.Trees(slug, reg.old.Parent, b.Parent)...)
	}
	reg.exempt = c.book.OperatorExempt(reg.touched)
	if err := c.book.Register(b); err != nil {
		return reg, existed, err
	}
	reg.b = b
	return reg, existed, nil
}

func describeBottle(b budget.Bottle) string {
	parts := []string{"registered"}
	if b.Parent != "" {
		parts = append(parts, "parent "+b.Parent)
	}
	if len(b.Budget) > 0 {
		parts = append(parts, "budget "+formatLimits(b.Budget))
	}
	if len(b.LabelBudget) > 0 {
		parts = append(parts, "label budget "+formatLimits(b.LabelBudget))
	}
	if b.Shutdown != "" {
		parts = append(parts, "shutdown "+string(b.Shutdown))
	}
	if len(b.Rate) > 0 {
		parts = append(parts, "rate "+formatRates(b.Rate))
	}
	return strings.Join(parts, ", ")
}

// formatRates renders rate guards as "claude=300k/min codex=1M/min", sorted.
func formatRates(r budget.Rates) string {
	parts := make([]string, 0, len(r))
	for p, n := range r {
		parts = append(parts, p+"="+budget.FormatRate(n))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// parseRates reads the registration's rate guards, naming the field of a
// bad one.
func parseRates(in map[string]string) (budget.Rates, error) {
	out := make(budget.Rates, len(in))
	for p, s := range in {
		if err := budget.ValidateName("rate", p); err != nil {
			return nil, err
		}
		n, err := budget.ParseRate(s)
		if err != nil {
			return nil, fmt.Errorf("rate.%s: %w", p, err)
		}
		out[p] = n
	}
	return out, nil
}

// providers lists the providers limits name.
func providers(l budget.Limits) []string {
	out := make([]string, 0, len(l))
	for p := range l {
		out = append(out, p)
	}
	return out
}

// formatLimits renders limits as "claude=1000000 codex=500000/day", sorted.
func formatLimits(l budget.Limits) string { return l.String() }
