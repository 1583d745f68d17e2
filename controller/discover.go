package controller

import (
	"context"
	"fmt"
	"slices"

	"github.com/bot-bottle/bottlecap/budget"
)

// Container is a bottle container as discovery reports it, with what its
// labels register (bot-bottle.budget, .parent, .shutdown, .agent).
type Container struct {
	ID       string
	Bottle   string
	Agent    string
	Parent   string
	Budget   budget.Limits
	Shutdown budget.Policy
	// Gone is true once the container has been removed.
	Gone bool
}

// Discover registers what a container's labels say, the first time the
// container is seen, and forgets removed containers. Discovery reports the
// same container again after every reconnect, so this is idempotent; labels
// apply only to a container new to its bottle, so that a restart does not
// undo budgets an operator changed at runtime.
func (c *Core) Discover(ctx context.Context, ctr Container) error {
	c.mu.Lock()
	b, known := c.book.Bottle(ctr.Bottle)
	c.mu.Unlock()
	has := known && slices.Contains(b.Containers, ctr.ID)
	switch {
	case ctr.Gone && has:
		return c.containerGone(ctx, b, ctr.ID)
	case ctr.Gone || has:
		return nil
	}
	if !known {
		b = budget.Bottle{Slug: ctr.Bottle, State: budget.Active, CreatedAt: c.now().UTC()}
	}
	b.Implicit = false
	b.Containers = append(slices.Clone(b.Containers), ctr.ID)
	if ctr.Agent != "" {
		b.Agent = ctr.Agent
	}
	if ctr.Parent != "" {
		b.Parent = ctr.Parent
	}
	if ctr.Shutdown != "" {
		b.Shutdown = ctr.Shutdown
	}
	b.Budget = b.Budget.Merge(ctr.Budget)
	if err := c.registerBottle(ctx, b); err != nil {
		return fmt.Errorf("register discovered container %.12s of %s: %w", ctr.ID, ctr.Bottle, err)
	}
	return nil
}

// containerGone drops a removed container from its bottle. A bottle left
// with no container at all, and not already frozen or killed, is recorded
// as killed: nothing of it runs any more.
func (c *Core) containerGone(ctx context.Context, b budget.Bottle, id string) error {
	b.Containers = slices.DeleteFunc(slices.Clone(b.Containers), func(have string) bool { return have == id })
	if err := c.putBottle(ctx, b, false); err != nil {
		return err
	}
	if len(b.Containers) > 0 || b.State == budget.Frozen || b.State == budget.Killed {
		return nil
	}
	c.mu.Lock()
	c.book.SetState(b.Slug, budget.Killed, "all of its containers were removed", false)
	c.mu.Unlock()
	if err := c.saveBottle(ctx, b.Slug); err != nil {
		return err
	}
	return c.audit(ctx, "bottle", b.Slug, "all of its containers were removed")
}
