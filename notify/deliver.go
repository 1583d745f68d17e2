package notify

import (
	"context"
	"errors"
	"fmt"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/internal/retry"
)

// run is a sink's delivery goroutine: it delivers the sink's queue in
// order, each delivery retried until the sink takes it, and waits for
// more when the queue is empty. It ends when the sink is removed or the
// notifier stops; what is left stays queued.
func (n *Notifier) run(ctx context.Context, s *sink) {
	defer n.wg.Done()
	failures := 0 // consecutive failures to read the queue
	for ctx.Err() == nil {
		ds, err := n.cfg.Queue.PendingNotices(ctx, s.name, page)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			n.log.Error("read the notification queue", "sink", s.name, "err", err)
			if retry.Sleep(ctx, n.cfg.Retry.Delay(failures)) != nil {
				return
			}
			continue
		}
		failures = 0
		if len(ds) == 0 {
			select {
			case <-s.wake:
			case <-ctx.Done():
				return
			}
			continue
		}
		for _, d := range ds {
			if !n.deliver(ctx, s, d) {
				return
			}
		}
	}
}

// deliver tries a delivery until the sink takes it, waiting longer after
// each failure; false means ctx ended first (the delivery stays queued).
func (n *Notifier) deliver(ctx context.Context, s *sink, d budget.Delivery) bool {
	for attempt := d.Attempts + 1; ; attempt++ {
		err := n.attempt(ctx, *s.conf.Load(), d)
		if ctx.Err() != nil {
			return false // stopping, or the sink was removed: not the sink's failure
		}
		if err == nil {
			n.m.delivered(s.name)
			if err := n.cfg.Queue.NoticeDelivered(ctx, d.ID); err != nil && ctx.Err() == nil {
				// It stays queued and will be delivered again: at least
				// once, with the same id for the receiver to drop.
				n.log.Error("forget a delivered notification", "sink", s.name, "err", err)
			}
			return true
		}
		n.log.Warn("notification not delivered; will retry", "sink", s.name, "kind", d.Kind, "attempt", attempt, "err", err)
		ferr := n.cfg.Queue.NoticeFailed(ctx, d.ID, attempt, err.Error())
		n.m.failed(s.name) // counted once the queue says so
		if errors.Is(ferr, budget.ErrNotFound) {
			return true // dropped from the queue meanwhile: nothing left to retry
		}
		if retry.Sleep(ctx, n.cfg.Retry.Delay(attempt)) != nil {
			return false
		}
	}
}

// attempt makes one delivery to a sink, within the sink's timeout.
func (n *Notifier) attempt(ctx context.Context, conf budget.NotifySink, d budget.Delivery) error {
	timeout := conf.Timeout
	if timeout <= 0 {
		timeout = budget.DefaultNotifyTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if conf.Webhook != "" {
		return n.post(ctx, conf, d)
	}
	if len(conf.Exec) > 0 {
		return run(ctx, conf, d)
	}
	return fmt.Errorf("sink %s has neither a webhook nor a program", conf.Name)
}
