package controller

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bot-bottle/bottlecap/api"
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
func (c *Core) registerImplicit(reports []budget.Report) (unstored []budget.Bottle, added []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := map[string]bool{}
	for _, r := range reports {
		if seen[r.Bottle] {
			continue
		}
		seen[r.Bottle] = true
		if _, known := c.book.Bottle(r.Bottle); !known {
			b := budget.Bottle{Slug: r.Bottle, Agent: r.Agent, State: budget.Active, Implicit: true, CreatedAt: c.now().UTC()}
			if err := c.book.Register(b); err != nil {
				continue // a valid slug with no parent cannot fail; the reports still count globally
			}
			c.unstored[r.Bottle] = true
			added = append(added, r.Bottle)
		}
		if c.unstored[r.Bottle] {
			b, _ := c.book.Bottle(r.Bottle)
			unstored = append(unstored, b)
		}
	}
	return unstored, added
}

// implicitStored records that the bottles' rows are committed, and
// announces the ones this request registered.
func (c *Core) implicitStored(stored []budget.Bottle, added []string) {
	c.mu.Lock()
	for _, b := range stored {
		delete(c.unstored, b.Slug)
	}
	c.mu.Unlock()
	for _, slug := range added {
		if b, err := c.bottleCopy(slug); err == nil {
			c.publish("bottle", slug, b)
		}
	}
}

// claim is an action or warning decided under the lock and persisted after.
type claim struct {
	slug   string
	kind   budget.ActionKind // "" for a warning
	event  budget.Event
	policy budget.Policy
}

// apply counts committed reports in the book, settles the allowances they
// name (allowances[i] for reports[i]; nil when none names one), and acts on
// the crossings they cause: a warn event once per budget, an action per
// governed bottle.
// Reports are counted lockChunk at a time, so that a large batch never
// holds the gate (c.mu) for long.
func (c *Core) apply(ctx context.Context, reports []budget.Report, allowances []string) {
	var claims []claim
	for i := 0; i < len(reports); i += lockChunk {
		end := min(i+lockChunk, len(reports))
		var settles []string
		if allowances != nil {
			settles = allowances[i:end]
		}
		claims = append(claims, c.record(reports[i:end], settles)...)
	}
	for _, r := range reports {
		c.publish("usage", r.Bottle, r)
	}
	c.persistClaims(ctx, claims)
}

// lockChunk is how many reports one hold of c.mu handles: a few hundred
// microseconds of work, however large the request.
const lockChunk = 256

// record counts reports in the book and their bottles' rate windows,
// settles the allowances they name and claims what their crossings and
// tripped rate guards act on, under one hold of c.mu: a report's
// tokens leave the allowance's hold in the same instant they join the
// usage, so that at no instant are they counted twice (which would deny
// room that is there) or not at all (which would grant it twice).
func (c *Core) record(reports []budget.Report, allowances []string) []claim {
	var events []budget.Event
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.advanceLocked(now)
	for i, r := range reports {
		events = append(events, c.book.Record(r)...)
		if allowances != nil && allowances[i] != "" {
			c.settleLocked(allowances[i], r)
		}
	}
	guarded := c.countRatesLocked(reports, now)
	c.armLocked()
	return append(c.claim(events, false), c.tripRatesLocked(guarded, now)...)
}

// claim decides, under c.mu, which bottles each event acts on, and marks
// them in the book at once so that a concurrent batch cannot act twice.
// skipOperator leaves alone bottles whose state an operator set (used when
// reconciling at start-up, where old crossings are seen again).
func (c *Core) claim(events []budget.Event, skipOperator bool) []claim {
	var out []claim
	for _, e := range events {
		if e.Kind == budget.EventWarn {
			out = append(out, claim{event: e})
		}
		for _, t := range e.Targets {
			b, ok := c.book.Bottle(t.Slug)
			if !ok || b.State.Blocked() || (skipOperator && b.ByOperator) {
				continue
			}
			if e.Kind == budget.EventWarn {
				if b.State == budget.Active {
					c.book.SetState(t.Slug, budget.Warned, e.Reason, false)
					out = append(out, claim{slug: t.Slug, event: e})
				}
				continue
			}
			c.book.SetState(t.Slug, budget.Pending, e.Reason, false)
			out = append(out, claim{slug: t.Slug, kind: budget.ActionFor(t.Policy), event: e, policy: t.Policy})
		}
	}
	return out
}

// persistClaims journals what claim decided. A failure here leaves the
// committed usage in place; the start-up reconciliation acts on it again.
func (c *Core) persistClaims(ctx context.Context, claims []claim) {
	c.tellCrossings(claims)
	c.tellRateTrips(claims)
	for _, cl := range claims {
		var err error
		switch {
		case cl.slug == "":
			err = c.warnOnce(ctx, cl.event)
		case cl.kind == "":
			err = c.saveBottle(ctx, cl.slug)
		default:
			_, err = c.start(ctx, cl.slug, cl.kind, cl.event.Reason, false)
		}
		if err != nil {
			c.log.Error("journal budget crossing", "bottle", cl.slug, "reason", cl.event.Reason, "err", err)
		}
	}
}

// warnOnce records a warn event once per (scope, provider) and window
// period: a windowed limit warns again in its next window.
func (c *Core) warnOnce(ctx context.Context, e budget.Event) error {
	mark, until := e.WarnMark(c.now())
	first, err := c.ledger.MarkWarned(ctx, e.Scope.Kind, e.Scope.ID, e.Provider, mark, until)
	if err != nil || !first {
		return err
	}
	bottle := ""
	if e.Scope.Kind == budget.ScopeBottle {
		bottle = e.Scope.ID
	}
	n := budgetNotice(budget.NoticeWarn, e, nil)
	n.TS = c.now().UTC()
	c.publish("warn", bottle, n)
	c.tell(n)
	return c.audit(ctx, "warn", bottle, e.Reason)
}

// reconcile acts on budgets found exhausted at start-up whose bottles are
// still active: crossings committed (or limits lowered) before a crash but
// never journaled. A bottle an operator restored is exempt from what was
// exhausted before this start, as it was before the restart.
func (c *Core) reconcile(ctx context.Context) {
	c.mu.Lock()
	all := c.book.Slugs()
	exempt := c.book.OperatorExempt(all)
	c.mu.Unlock()
	c.settle(ctx, all, exempt)
}

// settle acts on what a change left behind among the bottles it touched
// (SPEC section 2: any change that leaves a budget exhausted acts): each
// exhausted budget over an active or warned bottle journals one action for
// it, each warn threshold passed is recorded, and each bottle a budget cut
// off that has room again is restored. claim marks the bottles under the
// same lock, so causes that coincide (a report, a reload, an API call)
// act once; blocked bottles are never acted on again.
func (c *Core) settle(ctx context.Context, slugs []string, exempt budget.Exemptions) {
	c.mu.Lock()
	claims := c.claim(c.book.Crossings(slugs, exempt), false)
	restore := c.book.Restorable(slugs)
	for _, slug := range restore {
		c.book.SetState(slug, budget.Pending, "budget raised above usage", false)
	}
	c.mu.Unlock()
	c.persistClaims(ctx, claims)
	for _, slug := range restore {
		if _, err := c.start(ctx, slug, budget.ActRestore, "budget raised above usage", false); err != nil {
			c.log.Error("restore after budget raise", "bottle", slug, "err", err)
		}
	}
}

// Ingest takes validated, weighted reports: it registers unknown bottles,
// commits the reports (with the rows of those bottles, in the same
// transaction) through the Ingester, and only then records them, settles
// the allowances they name, acts on their crossings and answers with the
// verdicts. allowances[i] is the allowance reports[i] settles ("" for
// none); nil when no report names one. A duplicate settles nothing: it
// settled what it named when it was first counted.
func (c *Core) Ingest(ctx context.Context, reports []budget.Report, allowances []string) (api.IngestReply, error) {
	c.ingestGate.RLock() // from before the commit to after the count (windows.go)
	defer c.ingestGate.RUnlock()
	unstored, added := c.registerImplicit(reports)
	committing := time.Now()
	results, err := c.ingester.SubmitWith(ctx, reports, unstored)
	c.metrics.commitSeconds.Observe(time.Since(committing).Seconds())
	if err != nil {
		// The bottles stay in the book, marked unstored: the next report
		// naming one commits its row with it.
		if errors.Is(err, context.Canceled) {
			return api.IngestReply{}, fmt.Errorf("%w: request cancelled before commit", budget.ErrUnavailable)
		}
		return api.IngestReply{}, fmt.Errorf("commit reports: %w", err)
	}
	c.implicitStored(unstored, added)
	var reply api.IngestReply
	var fresh []budget.Report
	var settles []string
	for i, res := range results {
		if res.Duplicate {
			reply.Duplicates++
			continue
		}
		reply.Accepted++
		fresh = append(fresh, reports[i])
		if allowances != nil {
			settles = append(settles, allowances[i])
		}
	}
	c.apply(ctx, fresh, settles)
	reply.Verdicts = c.verdictsFor(reports)
	c.metrics.ingested(reply.Accepted, reply.Duplicates, fresh)
	return reply, nil
}
