package meter

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/internal/retry"
)

// Queue tuning: reports per ingest call, and the retry backoff.
const (
	maxBatch = 256
	// coalesce is the pause after sending a batch smaller than maxBatch, so
	// that under load reports reach the daemon a few hundred at a time: the
	// daemon's cost is mostly per call and per commit, and it shares the
	// machine with the traffic being metered. An idle queue sends a new
	// report at once; reports are acknowledged at most this much later.
	coalesce     = 10 * time.Millisecond
	firstBackoff = 50 * time.Millisecond
	maxBackoff   = 2 * time.Second
	sendTimeout  = 10 * time.Second
)

// queue holds reports until the daemon acknowledges them. One goroutine
// sends them in order, in batches, retrying with backoff; ingest is
// idempotent by report id, so a retry after a lost reply counts once.
type queue struct {
	d     Daemon
	log   *slog.Logger
	limit int
	spool *spool // nil without a spool file
	// acked receives the verdicts of each acknowledgement.
	acked func([]budget.Verdict)

	mu      sync.Mutex
	pending []api.Report
	closing bool

	wake   chan struct{} // a report was added
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // the sender returned
}

// newQueue starts a queue, replaying the spool at spoolPath when set.
func newQueue(d Daemon, spoolPath string, limit int, log *slog.Logger, acked func([]budget.Verdict)) (*queue, error) {
	q := &queue{d: d, log: log, limit: limit, acked: acked, wake: make(chan struct{}, 1), done: make(chan struct{})}
	if spoolPath != "" {
		s, replay, err := openSpool(spoolPath)
		if err != nil {
			return nil, err
		}
		q.spool, q.pending = s, replay
		if len(replay) > 0 {
			log.Info("replaying spooled usage reports", "reports", len(replay), "spool", spoolPath)
		}
	}
	q.ctx, q.cancel = context.WithCancel(context.Background())
	go q.run()
	return q, nil
}

// add queues one report. A full queue drops its oldest report (only
// reachable with --fail-open: otherwise the gate refuses new requests
// first) and says so.
func (q *queue) add(r api.Report) {
	q.mu.Lock()
	if len(q.pending) >= q.limit {
		q.log.Error("usage report queue full; dropping the oldest report", "id", q.pending[0].ID, "limit", q.limit)
		q.pending = q.pending[1:]
	}
	q.pending = append(q.pending, r)
	if q.spool != nil {
		if err := q.spool.append(r); err != nil {
			// Fallback: the report is still queued in memory and will be
			// sent; only a meter restart before then would lose it.
			q.log.Error("usage report not spooled", "id", r.ID, "err", err.Error())
		}
	}
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// full reports whether the queue is at its limit.
func (q *queue) full() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.pending) >= q.limit
}

// len is the number of reports waiting.
func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.pending)
}

// run sends until closed: a batch at a time, waiting while there is
// nothing to send, backing off while the daemon fails.
func (q *queue) run() {
	defer close(q.done)
	backoff := retry.Backoff{Base: firstBackoff, Max: maxBackoff}
	failures := 0
	for {
		batch, closing := q.head()
		if len(batch) == 0 {
			if closing {
				return
			}
			select {
			case <-q.wake:
				continue
			case <-q.ctx.Done():
				return
			}
		}
		sent, err := q.send(batch)
		q.drop(sent)
		if err == nil {
			failures = 0
			if len(batch) < maxBatch && !closing && retry.Sleep(q.ctx, coalesce) != nil {
				return
			}
			continue
		}
		failures++
		wait := backoff.Ceiling(failures)
		q.log.Debug("usage reports not acknowledged yet; retrying", "reports", len(batch)-sent, "in", wait, "err", err.Error())
		if retry.Sleep(q.ctx, wait) != nil {
			return
		}
	}
}

// head returns up to maxBatch reports from the front of the queue.
func (q *queue) head() ([]api.Report, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := min(len(q.pending), maxBatch)
	return append([]api.Report(nil), q.pending[:n]...), q.closing
}

// drop removes the first n reports, acknowledged (or refused for good).
func (q *queue) drop(n int) {
	if n == 0 {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.pending = q.pending[n:]
	if len(q.pending) == 0 {
		q.pending = nil // let the backing array go
	}
	if q.spool != nil {
		if err := q.spool.compact(q.pending); err != nil {
			// Fallback: a spool that is not compacted only grows; replay
			// dedups, and the daemon counts each id once.
			q.log.Error("usage spool not compacted", "err", err.Error())
		}
	}
}

// send ingests batch and returns how many reports from its front are done
// with. A report the daemon refuses for good (invalid, or not permitted) is
// logged and dropped rather than blocking the queue forever; to find it, a
// refused batch is retried one report at a time.
func (q *queue) send(batch []api.Report) (int, error) {
	err := q.ingest(batch)
	if err == nil {
		return len(batch), nil
	}
	if !permanent(err) {
		return 0, err
	}
	if len(batch) == 1 {
		q.log.Error("usage report refused by the daemon; dropped", "id", batch[0].ID, "err", err.Error())
		return 1, nil
	}
	for i := range batch {
		if _, err := q.send(batch[i : i+1]); err != nil {
			return i, err
		}
	}
	return len(batch), nil
}

// ingest makes one bounded ingest call.
func (q *queue) ingest(batch []api.Report) error {
	ctx, cancel := context.WithTimeout(q.ctx, sendTimeout)
	defer cancel()
	reply, err := q.d.Ingest(ctx, batch)
	if err == nil && q.acked != nil {
		q.acked(reply.Verdicts)
	}
	return err
}

// permanent reports whether retrying err cannot help.
func permanent(err error) bool {
	return errors.Is(err, budget.ErrInvalid) || errors.Is(err, budget.ErrDenied)
}

// close lets the sender drain the queue until ctx ends, then stops it and
// closes the spool. It returns how many reports were left (kept in the
// spool, when there is one).
func (q *queue) close(ctx context.Context) int {
	q.mu.Lock()
	q.closing = true
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	select {
	case <-q.done:
	case <-ctx.Done():
		q.cancel()
		<-q.done
	}
	q.cancel()
	left := q.len()
	if q.spool != nil {
		if err := q.spool.close(); err != nil {
			q.log.Error("close usage spool", "err", err.Error())
		}
	}
	return left
}
