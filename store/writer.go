package store

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/bot-bottle/bottlecap/budget"
)

// ErrWriterClosed is returned by Submit after Close. It wraps
// budget.ErrUnavailable: a daemon shutting down cannot take reports, and
// the sidecar should retry against the next one.
var ErrWriterClosed = fmt.Errorf("writer closed: %w", budget.ErrUnavailable)

// Writer is the group commit: many goroutines Submit reports, one goroutine
// drains whatever is queued (up to a cap) into a single AppendReports
// transaction, and every submitter is answered only after that transaction
// has committed. One fsync then covers many callers, which is what lets
// acknowledged-after-commit ingest keep up with concurrent sidecars.
type Writer struct {
	db           *DB
	maxBatch     int
	beforeCommit func() error // test hook, see export_test.go

	mu     sync.RWMutex // held for reading while sending on queue, for writing to close it
	closed bool
	queue  chan *request
	done   chan struct{}
}

// WriterOption tunes NewWriter; the tests have options of their own
// (export_test.go).
type WriterOption func(*Writer)

// request states: a queued request may still be cancelled by its submitter;
// once the writer has taken it into a batch it is committed or failed with
// that batch.
const (
	queued int32 = iota
	taken
	cancelled
)

type request struct {
	reports []budget.Report
	bottles []budget.Bottle
	state   atomic.Int32
	results []budget.AppendResult
	err     error
	done    chan struct{}
}

// NewWriter starts the writer goroutine over db. Close it before db.
func NewWriter(db *DB, opts ...WriterOption) *Writer {
	w := &Writer{
		db:       db,
		maxBatch: 4096,
		queue:    make(chan *request, 4096),
		done:     make(chan struct{}),
	}
	for _, opt := range opts {
		opt(w)
	}
	go w.run()
	return w
}

// Submit queues reports and returns their results once the transaction that
// holds them has committed; results are in the order of reports. The reports
// of one Submit always go into the same transaction.
//
// ctx is honoured while the reports wait in the queue: Submit then returns
// ctx.Err() and the reports are not stored. Once the writer has taken them
// into a committing batch, Submit waits for that commit whatever ctx says,
// so its answer is never ambiguous: on success they are durable, on error
// (which wraps budget.ErrUnavailable when a retry may succeed) they are not.
func (w *Writer) Submit(ctx context.Context, reports []budget.Report) ([]budget.AppendResult, error) {
	return w.SubmitWith(ctx, reports, nil)
}

// SubmitWith is Submit that also inserts bottles, those the ledger does not
// hold yet, in the same transaction as the reports: bottles registered on
// the fly by their first reports are stored with them or not at all, and
// never cost a transaction of their own. A bottle already stored is left
// as it is.
func (w *Writer) SubmitWith(ctx context.Context, reports []budget.Report, bottles []budget.Bottle) ([]budget.AppendResult, error) {
	if err := budget.ValidateReports(reports); err != nil {
		return nil, err
	}
	for _, b := range bottles {
		if b.Slug == "" {
			return nil, fmt.Errorf("%w: bottle slug is required", budget.ErrInvalid)
		}
	}
	if len(reports) == 0 && len(bottles) == 0 {
		return []budget.AppendResult{}, nil
	}
	req := &request{reports: reports, bottles: bottles, done: make(chan struct{})}
	if err := w.enqueue(ctx, req); err != nil {
		return nil, err
	}
	select {
	case <-req.done:
		return req.results, req.err
	case <-ctx.Done():
		if req.state.CompareAndSwap(queued, cancelled) {
			return nil, ctx.Err()
		}
		<-req.done // already in a batch: its commit decides
		return req.results, req.err
	}
}

func (w *Writer) enqueue(ctx context.Context, req *request) error {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return ErrWriterClosed
	}
	select {
	case w.queue <- req:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops taking submissions, commits everything already queued,
// answers its submitters and stops the writer goroutine.
func (w *Writer) Close() error {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.queue)
	}
	w.mu.Unlock()
	<-w.done
	return nil
}

// run is the writer goroutine: take the first waiting request, add whatever
// else is already queued up to the cap, commit, answer, repeat.
func (w *Writer) run() {
	defer close(w.done)
	var next *request
	for {
		first := next
		if first == nil {
			var ok bool
			if first, ok = <-w.queue; !ok {
				return
			}
		}
		if !first.state.CompareAndSwap(queued, taken) {
			next = nil
			continue // its submitter gave up while it was queued
		}
		batch := []*request{first}
		batch, next = w.fill(batch, len(first.reports))
		w.commit(batch)
	}
}

// fill adds queued requests to batch without waiting, until the queue is
// empty or the next request would take the batch over the cap; that request
// is returned to start the next batch.
func (w *Writer) fill(batch []*request, n int) ([]*request, *request) {
	for n < w.maxBatch {
		select {
		case r, ok := <-w.queue:
			if !ok {
				return batch, nil
			}
			if n+len(r.reports) > w.maxBatch {
				return batch, r
			}
			if !r.state.CompareAndSwap(queued, taken) {
				continue
			}
			batch = append(batch, r)
			n += len(r.reports)
		default:
			return batch, nil
		}
	}
	return batch, nil
}

// commit appends the batch in one transaction and hands each request its
// slice of the results, or the batch's error.
func (w *Writer) commit(batch []*request) {
	var all []budget.Report
	var bottles []budget.Bottle
	for _, r := range batch {
		all = append(all, r.reports...)
		bottles = append(bottles, r.bottles...)
	}
	// The batch belongs to many callers, so no one caller's ctx may cancel it.
	results, err := w.db.appendCommit(context.Background(), all, bottles, w.beforeCommit)
	if err != nil {
		err = fmt.Errorf("group commit of %d reports: %w", len(all), err)
	}
	for _, r := range batch {
		if err != nil {
			r.err = err
		} else {
			r.results, results = results[:len(r.reports):len(r.reports)], results[len(r.reports):]
		}
		close(r.done)
	}
}
