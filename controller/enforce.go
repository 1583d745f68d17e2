package controller

import (
	"context"
	"fmt"
	"slices"

	"github.com/bot-bottle/bottlecap/budget"
)

// Enforcer carries out journaled actions on bottles' containers. Submit
// must not block: the enforcer runs the action (retrying while the engine
// errors, never letting one bottle hold up another) and calls job.Finished
// exactly once with the outcome.
type Enforcer interface {
	Submit(job Job)
}

// Job is one action handed to an Enforcer.
type Job struct {
	Action     budget.Action
	Containers []string // container ids given at registration
	// Attempted is called after each failed attempt that will be retried.
	Attempted func(attempt int, err error)
	// Finished is called once: err nil means done.
	Finished func(attempts int, err error)
}

// registerImplicit registers in the book, on the fly, every bottle the
// reports name that the daemon does not know; the global scope (and any
// budget set on it explicitly) governs them until they are registered
// properly. It returns the implicit bottles whose rows are not stored yet,
// to be inserted in the transaction of the reports, and the slugs it
// registered itself. Registering one costs a map insert, not a walk of the
// forest nor a transaction of its own.
func (s *Server) registerImplicit(reports []budget.Report) (unstored []budget.Bottle, added []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[string]bool{}
	for _, r := range reports {
		if seen[r.Bottle] {
			continue
		}
		seen[r.Bottle] = true
		if _, known := s.book.Bottle(r.Bottle); !known {
			b := budget.Bottle{Slug: r.Bottle, Agent: r.Agent, State: budget.Active, Implicit: true, CreatedAt: s.now().UTC()}
			if err := s.book.Register(b); err != nil {
				continue // a valid slug with no parent cannot fail; the reports still count globally
			}
			s.unstored[r.Bottle] = true
			added = append(added, r.Bottle)
		}
		if s.unstored[r.Bottle] {
			b, _ := s.book.Bottle(r.Bottle)
			unstored = append(unstored, b)
		}
	}
	return unstored, added
}

// implicitStored records that the bottles' rows are committed, and
// announces the ones this request registered.
func (s *Server) implicitStored(stored []budget.Bottle, added []string) {
	s.mu.Lock()
	for _, b := range stored {
		delete(s.unstored, b.Slug)
	}
	s.mu.Unlock()
	for _, slug := range added {
		if b, err := s.bottleCopy(slug); err == nil {
			s.publish("bottle", slug, b)
		}
	}
}

func (s *Server) bottleCopy(slug string) (budget.Bottle, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.book.Bottle(slug)
	if !ok {
		return b, fmt.Errorf("%w: bottle %q", budget.ErrNotFound, slug)
	}
	return b, nil
}

// claim is an action or warning decided under the lock and persisted after.
type claim struct {
	slug   string
	kind   budget.ActionKind // "" for a warning
	event  budget.Event
	policy budget.Policy
}

// apply counts committed reports in the book and acts on the crossings
// they cause: a warn event once per budget, an action per governed bottle.
// Reports are counted lockChunk at a time, so that a large batch never
// holds the gate (s.mu) for long.
func (s *Server) apply(ctx context.Context, reports []budget.Report) {
	var claims []claim
	for chunk := range slices.Chunk(reports, lockChunk) {
		claims = append(claims, s.record(chunk)...)
	}
	for _, r := range reports {
		s.publish("usage", r.Bottle, r)
	}
	s.persistClaims(ctx, claims)
}

// lockChunk is how many reports one hold of s.mu handles: a few hundred
// microseconds of work, however large the request.
const lockChunk = 256

// record counts reports in the book and claims what their crossings act
// on, under one hold of s.mu.
func (s *Server) record(reports []budget.Report) []claim {
	var events []budget.Event
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range reports {
		events = append(events, s.book.Record(r)...)
	}
	return s.claim(events, false)
}

// claim decides, under s.mu, which bottles each event acts on, and marks
// them in the book at once so that a concurrent batch cannot act twice.
// skipOperator leaves alone bottles whose state an operator set (used when
// reconciling at start-up, where old crossings are seen again).
func (s *Server) claim(events []budget.Event, skipOperator bool) []claim {
	var out []claim
	for _, e := range events {
		if e.Kind == budget.EventWarn {
			out = append(out, claim{event: e})
		}
		for _, t := range e.Targets {
			b, ok := s.book.Bottle(t.Slug)
			if !ok || b.State.Blocked() || (skipOperator && b.ByOperator) {
				continue
			}
			if e.Kind == budget.EventWarn {
				if b.State == budget.Active {
					s.book.SetState(t.Slug, budget.Warned, e.Reason, false)
					out = append(out, claim{slug: t.Slug, event: e})
				}
				continue
			}
			s.book.SetState(t.Slug, budget.Pending, e.Reason, false)
			out = append(out, claim{slug: t.Slug, kind: budget.ActionFor(t.Policy), event: e, policy: t.Policy})
		}
	}
	return out
}

// persistClaims journals what claim decided. A failure here leaves the
// committed usage in place; the start-up reconciliation acts on it again.
func (s *Server) persistClaims(ctx context.Context, claims []claim) {
	for _, c := range claims {
		var err error
		switch {
		case c.slug == "":
			err = s.warnOnce(ctx, c.event)
		case c.kind == "":
			err = s.acts.saveBottle(ctx, c.slug)
		default:
			_, err = s.acts.start(ctx, c.slug, c.kind, c.event.Reason, false)
		}
		if err != nil {
			s.log.Error("journal budget crossing", "bottle", c.slug, "reason", c.event.Reason, "err", err)
		}
	}
}

// warnOnce records a warn event once per (scope, provider).
func (s *Server) warnOnce(ctx context.Context, e budget.Event) error {
	first, err := s.cfg.Ledger.MarkWarned(ctx, e.Scope.Kind, e.Scope.ID, e.Provider)
	if err != nil || !first {
		return err
	}
	bottle := ""
	if e.Scope.Kind == budget.ScopeBottle {
		bottle = e.Scope.ID
	}
	s.publish("warn", bottle, e)
	return s.audit(ctx, "warn", bottle, e.Reason)
}

// reconcile acts on budgets found exhausted at start-up whose bottles are
// still active: crossings committed (or limits lowered) before a crash but
// never journaled. A bottle an operator restored is exempt from what was
// exhausted before this start, as it was before the restart.
func (s *Server) reconcile(ctx context.Context) {
	s.mu.Lock()
	all := s.book.Slugs()
	exempt := s.book.OperatorExempt(all)
	s.mu.Unlock()
	s.settle(ctx, all, exempt)
}

// settle acts on what a change left behind among the bottles it touched
// (SPEC section 2: any change that leaves a budget exhausted acts): each
// exhausted budget over an active or warned bottle journals one action for
// it, each warn threshold passed is recorded, and each bottle a budget cut
// off that has room again is restored. claim marks the bottles under the
// same lock, so causes that coincide (a report, a reload, an API call)
// act once; blocked bottles are never acted on again.
func (s *Server) settle(ctx context.Context, slugs []string, exempt budget.Exemptions) {
	s.mu.Lock()
	claims := s.claim(s.book.Crossings(slugs, exempt), false)
	restore := s.book.Restorable(slugs)
	for _, slug := range restore {
		s.book.SetState(slug, budget.Pending, "budget raised above usage", false)
	}
	s.mu.Unlock()
	s.persistClaims(ctx, claims)
	for _, slug := range restore {
		if _, err := s.acts.start(ctx, slug, budget.ActRestore, "budget raised above usage", false); err != nil {
			s.log.Error("restore after budget raise", "bottle", slug, "err", err)
		}
	}
}

// audit appends to the hash-chained audit log.
func (s *Server) audit(ctx context.Context, kind, bottle, detail string) error {
	_, err := s.cfg.Ledger.AppendAudit(ctx, budget.AuditEntry{Kind: kind, Bottle: bottle, Detail: detail})
	if err == nil {
		s.publish("audit", bottle, map[string]string{"kind": kind, "detail": detail})
	}
	return err
}
