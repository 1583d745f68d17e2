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
func (s *Server) Discover(ctx context.Context, c Container) error {
	s.mu.Lock()
	b, known := s.book.Bottle(c.Bottle)
	s.mu.Unlock()
	has := known && slices.Contains(b.Containers, c.ID)
	switch {
	case c.Gone && has:
		return s.containerGone(ctx, b, c.ID)
	case c.Gone || has:
		return nil
	}
	if !known {
		b = budget.Bottle{Slug: c.Bottle, State: budget.Active, CreatedAt: s.now().UTC()}
	}
	b.Implicit = false
	b.Containers = append(slices.Clone(b.Containers), c.ID)
	if c.Agent != "" {
		b.Agent = c.Agent
	}
	if c.Parent != "" {
		b.Parent = c.Parent
	}
	if c.Shutdown != "" {
		b.Shutdown = c.Shutdown
	}
	b.Budget = b.Budget.Merge(c.Budget)
	if err := s.registerBottle(ctx, b); err != nil {
		return fmt.Errorf("register discovered container %.12s of %s: %w", c.ID, c.Bottle, err)
	}
	return nil
}

// containerGone drops a removed container from its bottle. A bottle left
// with no container at all, and not already frozen or killed, is recorded
// as killed: nothing of it runs any more.
func (s *Server) containerGone(ctx context.Context, b budget.Bottle, id string) error {
	b.Containers = slices.DeleteFunc(slices.Clone(b.Containers), func(c string) bool { return c == id })
	if err := s.putBottle(ctx, b, false); err != nil {
		return err
	}
	if len(b.Containers) > 0 || b.State == budget.Frozen || b.State == budget.Killed {
		return nil
	}
	s.mu.Lock()
	s.book.SetState(b.Slug, budget.Killed, "all of its containers were removed", false)
	s.mu.Unlock()
	if err := s.acts.saveBottle(ctx, b.Slug); err != nil {
		return err
	}
	return s.audit(ctx, "bottle", b.Slug, "all of its containers were removed")
}
