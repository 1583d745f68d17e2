package fleet

import (
	"context"
	"errors"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/internal/retry"
)

// shipBackoff spaces retries after a failed shipment: quick for a blip,
// at most a few seconds during an outage so catching up starts soon
// after Postgres returns.
var shipBackoff = retry.Backoff{Base: 100 * time.Millisecond, Max: 5 * time.Second}

// shipPoll wakes an idle shipper even without a commit signal.
const shipPoll = 5 * time.Second

// shipper is the shipping loop's own state (one goroutine).
type shipper struct {
	m       *Member
	cursor  int64 // the last seq Postgres holds
	saved   int64 // the cursor as last written to the ledger
	savedAt time.Time
	// pending is since when reports have been waiting to be shipped (the
	// zero Time: none are): the lag is its age.
	pending time.Time
	// lastShip is when the last partial batch was shipped.
	lastShip time.Time
	health   health
}

// shipLoop ships the ledger from the cursor until ctx ends: woken by the
// ledger's commits (which it never makes wait) or a poll, backing off
// after failures without listening to commits, so a busy host does not
// hammer an unreachable Postgres.
func (m *Member) shipLoop(ctx context.Context) {
	s := &shipper{m: m, health: health{log: m.log, loop: "shipping"}}
	if !s.start(ctx) {
		return
	}
	defer s.saveCursor(context.WithoutCancel(ctx))
	failures := 0
	for {
		err := s.shipAll(ctx)
		s.health.note(err)
		s.publish(err)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			failures++
			if retry.Sleep(ctx, shipBackoff.Delay(failures)) != nil {
				return
			}
			continue
		}
		failures = 0
		if !s.idle(ctx) {
			return
		}
	}
}

// start reads the cursor (retrying while the ledger will not say) and
// dates the backlog by its oldest report, so the lag after a restart
// counts the time the daemon was down.
func (s *shipper) start(ctx context.Context) bool {
	for attempt := 1; ; attempt++ {
		cur, err := s.m.cfg.Ledger.FleetCursor(ctx)
		if err == nil {
			s.cursor, s.saved, s.savedAt = cur, cur, time.Now()
			break
		}
		s.health.note(err)
		if retry.Sleep(ctx, shipBackoff.Delay(attempt)) != nil {
			return false
		}
	}
	if next, err := s.m.cfg.Ledger.ReportsAfter(ctx, s.cursor, 1); err == nil && len(next) > 0 {
		s.pending = time.Now()
		if ts := next[0].TS; !ts.IsZero() && ts.Before(s.pending) {
			s.pending = ts
		}
	}
	s.publish(nil)
	return true
}

// idle waits for a commit, the poll, or the moment the cursor may be
// written; false when ctx ended.
func (s *shipper) idle(ctx context.Context) bool {
	poll := time.NewTimer(shipPoll)
	defer poll.Stop()
	var save <-chan time.Time
	if s.cursor != s.saved {
		t := time.NewTimer(time.Until(s.savedAt.Add(s.m.cfg.CursorEvery)))
		defer t.Stop()
		save = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return false
		case <-s.m.cfg.Ledger.Committed():
			if s.pending.IsZero() {
				s.pending = time.Now()
			}
			return true
		case <-poll.C:
			return true
		case <-save:
			s.saveCursor(ctx)
			save = nil
		}
	}
}

// shipAll ships batches until the ledger has nothing after the cursor:
// full ones back to back, partial ones ShipSpacing apart at the most.
func (s *shipper) shipAll(ctx context.Context) error {
	for {
		if wait := s.m.cfg.ShipSpacing - time.Since(s.lastShip); wait > 0 {
			if err := retry.Sleep(ctx, wait); err != nil {
				return err
			}
		}
		batch, err := s.m.cfg.Ledger.ReportsAfter(ctx, s.cursor, s.m.cfg.BatchSize)
		if err != nil {
			return err
		}
		if len(batch) == 0 {
			s.pending = time.Time{}
			return nil
		}
		if s.pending.IsZero() {
			s.pending = time.Now()
		}
		if err := s.shipBatch(ctx, batch); err != nil {
			return err
		}
		if len(batch) < s.m.cfg.BatchSize {
			s.lastShip = time.Now()
		}
		s.cursor = batch[len(batch)-1].Seq
		if time.Since(s.savedAt) >= s.m.cfg.CursorEvery {
			s.saveCursor(ctx)
		}
		s.publish(nil)
	}
}

// shipBatch sends one batch as the host's claim holder, claiming again
// first if the claim was lost.
func (s *shipper) shipBatch(ctx context.Context, batch []budget.SeqReport) error {
	ctx, cancel := context.WithTimeout(ctx, s.m.cfg.OpTimeout)
	defer cancel()
	db, err := s.m.session(ctx)
	if err != nil {
		return err
	}
	err = db.Ship(ctx, s.m.cfg.Fleet.Host, s.m.Instance(), batch, s.lag())
	if errors.Is(err, ErrClaimLost) {
		s.m.lostClaim(err)
	}
	return err
}

func (s *shipper) lag() time.Duration {
	if s.pending.IsZero() {
		return 0
	}
	return max(0, time.Since(s.pending))
}

// saveCursor writes the cursor to the ledger. A failure only means more
// to ship again after a crash, which Postgres ignores: it is retried at
// the next chance, not reported as a shipping error.
func (s *shipper) saveCursor(ctx context.Context) {
	if s.cursor == s.saved {
		return
	}
	if err := s.m.cfg.Ledger.SetFleetCursor(ctx, s.cursor); err != nil {
		s.m.log.Debug("fleet: cursor not saved; it will be", "err", err.Error())
		return
	}
	s.saved, s.savedAt = s.cursor, time.Now()
}

func (s *shipper) publish(err error) {
	st := &ShipState{Cursor: s.cursor, Lag: s.lag()}
	if err != nil {
		st.Err = err.Error()
	}
	s.m.ship.Store(st)
}
