package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/bot-bottle/bottlecap/budget"
)

// Container is a bottle container as discovery reports it, with what its
// labels register (bot-bottle.budget, .parent, .shutdown, .agent, .rate).
type Container struct {
	ID       string
	Bottle   string
	Agent    string
	Parent   string
	Budget   budget.Limits
	Shutdown budget.Policy
	Rate     budget.Rates
	// Gone is true once the container has been removed.
	Gone bool
}

// Discover registers what a container's labels say, the first time the
// container is seen, and forgets removed containers. Discovery reports the
// same container again after every reconnect, so this is idempotent; labels
// apply only to a container new to its bottle, so that a reconnect does not
// undo a registration that came after them. Runtime limits stay in force
// over labels whatever comes.
func (c *Core) Discover(ctx context.Context, ctr Container) error {
	if ctr.Gone {
		return c.containerGone(ctx, ctr.Bottle, ctr.ID)
	}
	err := c.withWindows(ctx, []budget.Limits{ctr.Budget}, func() error {
		return c.registerBottle(ctx, ctr.Bottle, func(b *budget.Bottle) error {
			return labelRegistration(b, ctr)
		})
	})
	if err != nil {
		return fmt.Errorf("register discovered container %.12s of %s: %w", ctr.ID, ctr.Bottle, err)
	}
	return nil
}

// labelRegistration merges what a container's labels say into its
// bottle, the first time the container is seen.
func labelRegistration(b *budget.Bottle, ctr Container) error {
	if slices.Contains(b.Containers, ctr.ID) {
		return errUnchanged
	}
	b.Implicit = false
	b.Containers = append(b.Containers, ctr.ID)
	if ctr.Agent != "" {
		b.Agent = ctr.Agent
	}
	if ctr.Parent != "" {
		b.Parent = ctr.Parent
	}
	if ctr.Shutdown != "" {
		b.Shutdown = ctr.Shutdown
	}
	b.LabelBudget, b.Budget = b.LabelBudget.Merge(ctr.Budget), b.Budget.Without(providers(ctr.Budget)...)
	b.Rate = b.Rate.Merge(ctr.Rate)
	return nil
}

// containerGone drops a removed container from its bottle. A bottle left
// with no container at all, and not already frozen or killed, is recorded
// as killed: nothing of it runs any more.
func (c *Core) containerGone(ctx context.Context, slug, id string) error {
	reg, err := c.putBottle(ctx, slug, func(b *budget.Bottle) error {
		if !slices.Contains(b.Containers, id) {
			return errUnchanged
		}
		b.Containers = slices.DeleteFunc(b.Containers, func(have string) bool { return have == id })
		return nil
	})
	if errors.Is(err, errUnchanged) {
		return nil
	}
	if err != nil {
		return err
	}
	if !c.killEmpty(reg.b.Slug) {
		return nil
	}
	if err := c.saveBottle(ctx, slug); err != nil {
		return err
	}
	return c.audit(ctx, "bottle", slug, "all of its containers were removed")
}

// killEmpty records as killed a bottle left with no container, unless it
// is frozen or killed already, and reports whether it did.
func (c *Core) killEmpty(slug string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.book.Bottle(slug)
	if !ok || len(b.Containers) > 0 || b.State == budget.Frozen || b.State == budget.Killed {
		return false
	}
	c.book.SetState(slug, budget.Killed, "all of its containers were removed", false)
	return true
}
