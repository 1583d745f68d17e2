package controller

import (
	"context"
	"fmt"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
)

// start journals an action as pending, marks the bottle pending and hands
// the action to the enforcer. With no enforcer it stays pending, visibly.
func (c *Core) start(ctx context.Context, slug string, kind budget.ActionKind, reason string, operator bool) (budget.Action, error) {
	act, err := c.journal(ctx, slug, kind, reason, operator)
	if err != nil {
		return act, err
	}
	return act, c.begin(ctx, act)
}

// journal records an action as pending before anything acts on it.
func (c *Core) journal(ctx context.Context, slug string, kind budget.ActionKind, reason string, operator bool) (budget.Action, error) {
	act, err := c.ledger.CreateAction(ctx, budget.Action{Bottle: slug, Kind: kind, Reason: reason, Operator: operator, Status: budget.StatusPending})
	if err != nil {
		return act, fmt.Errorf("journal %s of %s: %w", kind, slug, err)
	}
	return act, nil
}

// begin marks a journaled action's bottle pending, saves it, audits and
// hands the action to the enforcer.
func (c *Core) begin(ctx context.Context, act budget.Action) error {
	c.mu.Lock()
	c.book.SetState(act.Bottle, budget.Pending, pendingReason(act.Kind, act.Reason), act.Operator)
	if act.Kind == budget.ActRestore {
		c.resetRateLocked(act.Bottle)
	}
	b, _ := c.book.Bottle(act.Bottle)
	c.mu.Unlock()
	if err := c.saveBottle(ctx, act.Bottle); err != nil {
		return err
	}
	if err := c.audit(ctx, "action_pending", act.Bottle, fmt.Sprintf("%s #%d (%s): %s", act.Kind, act.ID, who(act.Operator, b.ByRateGuard), act.Reason)); err != nil {
		return err
	}
	c.publish("action", act.Bottle, apiAction(act))
	c.metrics.action(string(act.Kind), string(budget.StatusPending))
	c.logStarted(act, who(act.Operator, b.ByRateGuard))
	c.submit(act)
	return nil
}

func pendingReason(kind budget.ActionKind, reason string) string {
	return fmt.Sprintf("%s pending: %s", kind, reason)
}

// Act starts an operator's action on a bottle. The check that the action
// makes sense in the bottle's state and the claim of the bottle (pending,
// by the operator) are one critical section, as a crossing's claim is: no
// action or crossing can come between them, and a crossing that comes
// after finds the bottle claimed. If the journal then refuses the action,
// the claim is undone and nothing happened.
func (c *Core) Act(ctx context.Context, slug string, kind budget.ActionKind, reason string) (budget.Action, error) {
	undo, err := c.claimAction(slug, kind, reason)
	if err != nil {
		return budget.Action{}, err
	}
	act, err := c.journal(ctx, slug, kind, reason, true)
	if err != nil {
		undo()
		if serr := c.saveBottle(ctx, slug); serr != nil { // in case a save wrote the claim meanwhile
			c.log.Error("save bottle state", "bottle", slug, "err", serr)
		}
		return act, err
	}
	return act, c.begin(ctx, act)
}

// claimAction refuses actions that make no sense in the bottle's state,
// and otherwise marks the bottle pending by the operator at once. undo
// puts the state back unless something else changed it meanwhile.
func (c *Core) claimAction(slug string, kind budget.ActionKind, reason string) (undo func(), err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.book.Bottle(slug)
	switch {
	case !ok:
		return nil, fmt.Errorf("%w: bottle %q", budget.ErrNotFound, slug)
	case b.State == budget.Killed:
		return nil, fmt.Errorf("%w: bottle %s was killed; nothing is left to act on", budget.ErrConflict, slug)
	case kind == budget.ActRestore && b.State != budget.CutOff && b.State != budget.Paused && b.State != budget.Pending:
		return nil, fmt.Errorf("%w: bottle %s is %s; restore only reverses a cutoff or a pause", budget.ErrConflict, slug, b.State)
	}
	claimed := pendingReason(kind, reason)
	c.book.SetState(slug, budget.Pending, claimed, true)
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if cur, ok := c.book.Bottle(slug); ok && cur.State == budget.Pending && cur.StateReason == claimed && cur.ByOperator {
			c.book.SetState(slug, b.State, b.StateReason, b.ByOperator)
		}
	}, nil
}

// submit hands a journaled action to the enforcer.
func (c *Core) submit(act budget.Action) {
	if c.enforcer == nil {
		return // no enforcer: the action stays pending and visible, never "done"
	}
	c.mu.Lock()
	b, _ := c.book.Bottle(act.Bottle)
	c.mu.Unlock()
	c.enforcer.Submit(Job{
		Action:     act,
		Containers: b.Containers,
		Attempted:  func(n int, err error) { c.attempted(act, n, err) },
		Finished:   func(n int, err error) { c.finished(act, n, err) },
	})
}

// attempted records a failed attempt that will be retried.
func (c *Core) attempted(act budget.Action, n int, err error) {
	c.log.Warn("action attempt failed; retrying", "bottle", act.Bottle, "action", string(act.Kind), "action_id", act.ID, "attempt", n, "err", err.Error())
	act.Attempts, act.LastError = n, err.Error()
	if uerr := c.ledger.UpdateAction(context.Background(), act); uerr != nil {
		c.log.Error("journal attempt", "action", act.ID, "err", uerr)
	}
	c.publish("action", act.Bottle, apiAction(act))
}

// finished records the outcome and moves the bottle to its new state. A
// failed action leaves the bottle pending (the gate keeps denying) with the
// error as its reason, for an operator to look at.
func (c *Core) finished(act budget.Action, n int, err error) {
	ctx := context.Background()
	act.Attempts, act.Status, act.LastError = n, budget.StatusDone, ""
	state, reason, kind := budget.StateAfter(act.Kind), act.Reason, "action_done"
	if err != nil {
		act.Status, act.LastError = budget.StatusFailed, err.Error()
		state, reason, kind = budget.Pending, fmt.Sprintf("%s failed: %v", act.Kind, err), "action_failed"
	}
	if uerr := c.ledger.UpdateAction(ctx, act); uerr != nil {
		c.log.Error("journal outcome", "action", act.ID, "err", uerr)
	}
	now := c.now()
	c.mu.Lock()
	before, _ := c.book.Bottle(act.Bottle)
	if act.Operator || !before.ByOperator {
		// An operator who claimed the bottle after this budget's action
		// began owns its state now; the older action's outcome is only
		// journaled.
		c.book.SetState(act.Bottle, state, reason, act.Operator)
	}
	if err == nil {
		c.rateActionDoneLocked(act.Bottle, now)
	}
	c.mu.Unlock()
	if serr := c.saveBottle(ctx, act.Bottle); serr != nil {
		c.log.Error("save bottle state", "bottle", act.Bottle, "err", serr)
	}
	detail := fmt.Sprintf("%s #%d after %d attempt(s)", act.Kind, act.ID, n)
	if err != nil {
		detail += ": " + err.Error()
	}
	if aerr := c.audit(ctx, kind, act.Bottle, detail); aerr != nil {
		c.log.Error("audit outcome", "action", act.ID, "err", aerr)
	}
	c.publish("action", act.Bottle, apiAction(act))
	c.metrics.action(string(act.Kind), string(act.Status))
	c.tellFinished(act, n, err)
	if err == nil && c.settlesAfter(act, before) {
		c.settle(ctx, []string{act.Bottle}, nil)
	}
}

// settlesAfter says whether a finished action may have left its bottle out
// of step with its budgets, which then act at once rather than at the next
// change. The rate guard's lift may leave the bottle running under a budget
// exhausted while it was paused (reports in flight when it tripped). A
// budget's cutoff or pause may finish after the budget was raised while it
// was pending (restore-on-raise passes over pending bottles; at start the
// pending actions run while the book is reconciled), leaving the bottle
// blocked with room: settle restores it.
func (c *Core) settlesAfter(act budget.Action, before budget.Bottle) bool {
	if act.Kind == budget.ActRestore {
		return before.ByRateGuard
	}
	// Only while the bottle is still the budget's: once an operator has
	// claimed it meanwhile, the operator's action decides what comes next.
	return !act.Operator && !before.ByOperator && (act.Kind == budget.ActCutoff || act.Kind == budget.ActPause)
}

// saveBottle writes the book's copy of a bottle to the ledger. Every change
// of a bottle in the book is followed by a save (or happens within one, as
// putBottle's); saves are serialised and each reads the book when its turn
// comes, so the last save writes the latest state and the ledger never
// keeps an older one than memory.
func (c *Core) saveBottle(ctx context.Context, slug string) error {
	c.saveMu.Lock()
	defer c.saveMu.Unlock()
	return c.saveBottleLocked(ctx, slug)
}

// saveBottleLocked is saveBottle with saveMu held.
func (c *Core) saveBottleLocked(ctx context.Context, slug string) error {
	c.mu.Lock()
	b, ok := c.book.Bottle(slug)
	c.mu.Unlock()
	if !ok {
		return nil // forgotten meanwhile; nothing to save
	}
	if err := c.ledger.PutBottle(ctx, b); err != nil {
		return fmt.Errorf("save bottle %s: %w", slug, err)
	}
	c.publish("state", slug, map[string]any{"state": b.State, "reason": b.StateReason})
	return nil
}

// resume hands actions left pending by a previous run to the enforcer and
// acts on budgets that were exhausted but never acted on.
func (c *Core) resume(ctx context.Context) error {
	pending, err := c.ledger.Actions(ctx, budget.StatusPending)
	if err != nil {
		return fmt.Errorf("load pending actions: %w", err)
	}
	for _, act := range pending {
		c.submit(act)
	}
	c.reconcile(ctx)
	c.mu.Lock()
	c.scheduleLiftsLocked(c.now())
	c.mu.Unlock()
	return nil
}

// who names who asked for an action in the audit log.
func who(operator, rateGuard bool) string {
	switch {
	case operator:
		return "operator"
	case rateGuard:
		return "rate guard"
	}
	return "budget"
}

// apiAction is an action as the API shows it.
func apiAction(a budget.Action) api.Action {
	return api.Action{ID: a.ID, Bottle: a.Bottle, Kind: string(a.Kind), Reason: a.Reason, Operator: a.Operator,
		Status: string(a.Status), Attempts: a.Attempts, LastError: a.LastError, CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt}
}
