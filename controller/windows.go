package controller

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
	"golang.org/x/sync/errgroup"
)

// Windowed limits (SPEC section 12). The book keeps the usage of every
// window a limit in force uses, from reports as they are recorded; what it
// did not keep (at start, or when a change brings a window no limit used
// before, or moves the timezone) is read from the ledger. No report may be
// counted between that read and the book taking its rows — it would be in
// both, or in neither — so the read holds ingestGate exclusively: every
// ingest holds it shared from before its commit to after its count.

// readWindows reads the usage of windows ws from the ledger, under
// settings s (their timezone), for the book's LoadWindows: side by side,
// as the ledger's read pool allows (each is a sort of the reports in its
// window). The caller holds ingestGate exclusively until the book has
// them, or serves nothing yet.
func (c *Core) readWindows(ctx context.Context, ws []budget.Window, s *budget.Settings) ([]budget.WindowLoad, error) {
	if len(ws) == 0 {
		return nil, nil
	}
	c.mu.Lock()
	loads := c.book.WindowLoads(ws, s, c.now())
	c.mu.Unlock()
	g, gctx := errgroup.WithContext(ctx)
	for i := range loads {
		l := &loads[i]
		g.Go(func() (err error) {
			if l.Rows, err = c.ledger.WindowUsage(gctx, l.Since, l.Until, l.Step); err != nil {
				return fmt.Errorf("load usage of the %s window: %w", l.Window, err)
			}
			return nil
		})
	}
	return loads, g.Wait()
}

// loadWindows reads windows ws (readWindows) and puts them in the book.
func (c *Core) loadWindows(ctx context.Context, ws []budget.Window, s *budget.Settings) error {
	loads, err := c.readWindows(ctx, ws, s)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.book.LoadWindows(loads)
	c.mu.Unlock()
	return nil
}

// withWindows runs change, which puts limits ls in force, with their
// windows' usage loaded first when the book does not keep them: ingest is
// held from the read until change is done, so the new limits never see a
// window without its usage. Changes that bring no new window (the usual
// case) hold nothing.
func (c *Core) withWindows(ctx context.Context, ls []budget.Limits, change func() error) error {
	c.mu.Lock()
	need, s := c.book.NewWindows(ls...), c.settings
	c.mu.Unlock()
	if len(need) == 0 {
		return change()
	}
	c.ingestGate.Lock()
	defer c.ingestGate.Unlock()
	if err := c.loadWindows(ctx, need, s); err != nil {
		return err
	}
	err := change()
	c.scheduleResets()
	return err
}

// advanceLocked moves the book's windows to now; when usage dropped (a
// boundary passed before its timer fired, say after the host slept) the
// reset pass runs at once. c.mu must be held.
func (c *Core) advanceLocked(now time.Time) {
	if c.book.Advance(now) {
		c.resets.kick(c)
	}
}

// resetTimer keeps one timer, at the book's next window boundary (a
// calendar period's end, or a rolling window's oldest usage ageing out):
// no polling, and no timer at all while no window is in force.
type resetTimer struct {
	mu     sync.Mutex // guards the fields only, never held across the core's work
	at     time.Time  // when the armed timer fires; zero: none armed
	stop   func() bool
	closed bool
}

func newResetTimer() *resetTimer { return &resetTimer{} }

// arm makes the timer fire at t, unless one is armed at t or earlier (zero
// t: nothing to arm). It never postpones: a pass that finds nothing to do
// costs little and arms the next one, while a pass put off would leave
// bottles cut off past their reset.
func (r *resetTimer) arm(c *Core, t time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || t.IsZero() || (!r.at.IsZero() && !t.Before(r.at)) {
		return
	}
	if r.stop != nil {
		r.stop()
	}
	r.at = t
	r.stop = c.afterFunc(max(t.Sub(c.now()), 0), func() { c.boundary(t) })
}

// kick runs the reset pass now.
func (r *resetTimer) kick(c *Core) { r.arm(c, c.now()) }

// close disarms the timer for good.
func (r *resetTimer) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	if r.stop != nil {
		r.stop()
	}
}

// fired forgets the timer that fired at t, unless another replaced it.
func (r *resetTimer) fired(t time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.at.Equal(t) {
		r.at, r.stop = time.Time{}, nil
	}
}

// scheduleResets arms the timer at the book's next boundary. Every change
// of what windows are in force calls it, and so does each reset pass;
// recording reports arms it too (armLocked), for a rolling window's first
// usage.
func (c *Core) scheduleResets() {
	c.mu.Lock()
	next := c.book.NextReset()
	c.mu.Unlock()
	c.resets.arm(c, next)
}

// armLocked arms the timer at the book's next boundary when that is
// sooner than the one armed. c.mu must be held.
func (c *Core) armLocked() { c.resets.arm(c, c.book.NextReset()) }

// boundary is the timer's work: the reset pass, then the next timer.
func (c *Core) boundary(at time.Time) {
	c.resets.fired(at)
	c.ResetWindows(context.Background())
	c.scheduleResets()
}

// ResetWindows acts on what windows that passed leave (SPEC section 12):
// each bottle a budget cut off that no exhausted budget governs any more
// is restored (journaled and audited as any action; never one an
// operator cut off), and each bottle a budget warned that is back under
// every warn threshold is active again, so the next window warns anew.
// A bottle still exhausted by another limit stays as it is. The timer
// runs it at each boundary; it is safe to run at any time.
func (c *Core) ResetWindows(ctx context.Context) {
	now := c.now()
	c.mu.Lock()
	c.sweepLocked(now)
	all := c.book.Slugs()
	restore := c.book.Restorable(all)
	reasons := make(map[string]string, len(restore))
	for _, slug := range restore {
		b, _ := c.book.Bottle(slug)
		reasons[slug] = "budget window reset (cut off for: " + b.StateReason + ")"
		c.book.SetState(slug, budget.Pending, reasons[slug], false)
	}
	rearm := c.book.Rearmable(all)
	for _, slug := range rearm {
		c.book.SetState(slug, budget.Active, "", false)
	}
	c.mu.Unlock()
	if err := c.ledger.ForgetWarned(ctx, now); err != nil {
		c.log.Error("forget the warnings of windows that ended", "err", err)
	}
	for _, slug := range rearm {
		if err := c.saveBottle(ctx, slug); err != nil {
			c.log.Error("re-arm warning after window reset", "bottle", slug, "err", err)
			continue
		}
		if err := c.audit(ctx, "warn_rearmed", slug, "budget window reset: back under every warn threshold"); err != nil {
			c.log.Error("audit warning re-armed", "bottle", slug, "err", err)
		}
	}
	for _, slug := range restore {
		c.tell(budget.Notice{Kind: budget.NoticeReset, Bottle: slug, Action: budget.ActRestore, Reason: reasons[slug],
			Text: slug + ": " + reasons[slug] + "; restoring"})
		if _, err := c.start(ctx, slug, budget.ActRestore, reasons[slug], false); err != nil {
			c.log.Error("restore after window reset", "bottle", slug, "err", err)
		}
	}
}

// Close stops the core's timers — window resets and rate guards' lifts —
// as the daemon stops; the next start sets them again from the ledger.
func (c *Core) Close() {
	c.stopTimers()
	c.resets.close()
}
