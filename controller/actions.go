package controller

import (
	"context"
	"fmt"
	"sync"

	"github.com/bot-bottle/bottlecap/budget"
)

// actions journals enforcement and operator actions, hands them to the
// enforcer, and records their outcomes.
type actions struct {
	s *Server
	// saveMu serialises bottle saves so the last save writes the latest
	// state (each save copies the bottle from the book while holding it).
	saveMu sync.Mutex
}

// start journals an action as pending, marks the bottle pending and hands
// the action to the enforcer. With no enforcer it stays pending, visibly.
func (a *actions) start(ctx context.Context, slug string, kind budget.ActionKind, reason string, operator bool) (budget.Action, error) {
	s := a.s
	act, err := s.cfg.Ledger.CreateAction(ctx, budget.Action{Bottle: slug, Kind: kind, Reason: reason, Operator: operator, Status: budget.StatusPending})
	if err != nil {
		return act, fmt.Errorf("journal %s of %s: %w", kind, slug, err)
	}
	s.mu.Lock()
	s.book.SetState(slug, budget.Pending, fmt.Sprintf("%s pending: %s", kind, reason), operator)
	s.mu.Unlock()
	if err := a.saveBottle(ctx, slug); err != nil {
		return act, err
	}
	if err := s.audit(ctx, "action_pending", slug, fmt.Sprintf("%s #%d (%s): %s", kind, act.ID, who(operator), reason)); err != nil {
		return act, err
	}
	s.publish("action", slug, apiAction(act))
	s.metrics.action(string(kind), string(budget.StatusPending))
	a.submit(act)
	return act, nil
}

// submit hands a journaled action to the enforcer.
func (a *actions) submit(act budget.Action) {
	s := a.s
	if s.cfg.Enforcer == nil {
		return // no enforcer: the action stays pending and visible, never "done"
	}
	s.mu.Lock()
	b, _ := s.book.Bottle(act.Bottle)
	s.mu.Unlock()
	s.cfg.Enforcer.Submit(Job{
		Action:     act,
		Containers: b.Containers,
		Attempted:  func(n int, err error) { a.attempted(act, n, err) },
		Finished:   func(n int, err error) { a.finished(act, n, err) },
	})
}

// attempted records a failed attempt that will be retried.
func (a *actions) attempted(act budget.Action, n int, err error) {
	act.Attempts, act.LastError = n, err.Error()
	if uerr := a.s.cfg.Ledger.UpdateAction(context.Background(), act); uerr != nil {
		a.s.log.Error("journal attempt", "action", act.ID, "err", uerr)
	}
	a.s.publish("action", act.Bottle, apiAction(act))
}

// finished records the outcome and moves the bottle to its new state. A
// failed action leaves the bottle pending (the gate keeps denying) with the
// error as its reason, for an operator to look at.
func (a *actions) finished(act budget.Action, n int, err error) {
	s, ctx := a.s, context.Background()
	act.Attempts, act.Status, act.LastError = n, budget.StatusDone, ""
	state, reason, kind := budget.StateAfter(act.Kind), act.Reason, "action_done"
	if err != nil {
		act.Status, act.LastError = budget.StatusFailed, err.Error()
		state, reason, kind = budget.Pending, fmt.Sprintf("%s failed: %v", act.Kind, err), "action_failed"
	}
	if uerr := s.cfg.Ledger.UpdateAction(ctx, act); uerr != nil {
		s.log.Error("journal outcome", "action", act.ID, "err", uerr)
	}
	s.mu.Lock()
	s.book.SetState(act.Bottle, state, reason, act.Operator)
	s.mu.Unlock()
	if serr := a.saveBottle(ctx, act.Bottle); serr != nil {
		s.log.Error("save bottle state", "bottle", act.Bottle, "err", serr)
	}
	detail := fmt.Sprintf("%s #%d after %d attempt(s)", act.Kind, act.ID, n)
	if err != nil {
		detail += ": " + err.Error()
	}
	if aerr := s.audit(ctx, kind, act.Bottle, detail); aerr != nil {
		s.log.Error("audit outcome", "action", act.ID, "err", aerr)
	}
	s.publish("action", act.Bottle, apiAction(act))
	s.metrics.action(string(act.Kind), string(act.Status))
}

// saveBottle writes the book's copy of a bottle to the store.
func (a *actions) saveBottle(ctx context.Context, slug string) error {
	a.saveMu.Lock()
	defer a.saveMu.Unlock()
	a.s.mu.Lock()
	b, ok := a.s.book.Bottle(slug)
	a.s.mu.Unlock()
	if !ok {
		return nil // forgotten meanwhile; nothing to save
	}
	if err := a.s.cfg.Ledger.PutBottle(ctx, b); err != nil {
		return fmt.Errorf("save bottle %s: %w", slug, err)
	}
	a.s.publish("state", slug, map[string]any{"state": b.State, "reason": b.StateReason})
	return nil
}

// resume hands actions left pending by a previous run to the enforcer and
// acts on budgets that were exhausted but never acted on.
func (a *actions) resume(ctx context.Context) error {
	pending, err := a.s.cfg.Ledger.Actions(ctx, budget.StatusPending)
	if err != nil {
		return fmt.Errorf("load pending actions: %w", err)
	}
	for _, act := range pending {
		a.submit(act)
	}
	a.s.reconcile(ctx)
	return nil
}

func who(operator bool) string {
	if operator {
		return "operator"
	}
	return "budget"
}
