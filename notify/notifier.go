// Package notify delivers the daemon's notices to the notification sinks
// of settings' notify: list (SPEC section 13): webhooks (the notice as
// JSON, or a Slack-compatible body, optionally signed) and programs (the
// notice on their standard input).
//
// Nothing here runs on the path of a report or an action: Notify only
// puts the notice in a buffered channel. One goroutine writes what
// arrives to the ledger's queue, one row per notice and sink that wants
// it; one goroutine per sink delivers its queue in order, retrying with
// backoff, and deletes each row once the sink has taken it. A restart
// resumes from the queue, so a delivery is at least once: a crash between
// a sink's answer and the row's deletion delivers that notice again, with
// the same id.
//
// Memory stays bounded however long a sink is down: the hand-off holds
// at most handOff notices and the writer one batch of as many (more are
// dropped and counted: the ledger is not keeping up), each sink reads
// its queue a page at a time, and the ledger keeps at most MaxQueued
// deliveries per sink (the oldest are dropped and counted).
package notify

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/internal/retry"
)

// Queue is the ledger's notification queue: the store's *DB satisfies it.
type Queue interface {
	// QueueNotices queues deliveries in one transaction, keeping at most
	// limit per sink (the oldest go), and counts what it dropped by sink.
	QueueNotices(ctx context.Context, ds []budget.Delivery, limit int) (dropped map[string]int, err error)
	// PendingNotices are a sink's oldest deliveries, at most limit.
	PendingNotices(ctx context.Context, sink string, limit int) ([]budget.Delivery, error)
	// NoticeDelivered forgets a delivery; NoticeFailed records a failed
	// attempt (budget.ErrNotFound when the delivery was dropped meanwhile).
	NoticeDelivered(ctx context.Context, id int64) error
	NoticeFailed(ctx context.Context, id int64, attempts int, lastError string) error
	// NoticeCounts are the deliveries queued, by sink.
	NoticeCounts(ctx context.Context) (map[string]int, error)
	// DropNotices drops the deliveries of sinks not in keep.
	DropNotices(ctx context.Context, keep []string) (map[string]int, error)
}

// Config is what a Notifier is started from.
type Config struct {
	Queue Queue
	Sinks []budget.NotifySink
	// Host names the daemon's host in every notice.
	Host string
	// Version is bottlecap's, in the webhooks' User-Agent.
	Version string
	Log     *slog.Logger
	// Retry spaces a delivery's attempts (no Base: DefaultRetry).
	Retry retry.Backoff
	// MaxQueued bounds each sink's queue in the ledger (zero:
	// DefaultMaxQueued).
	MaxQueued int
}

// DefaultRetry waits a second after a delivery's first failure, doubling
// to five minutes: a sink down for a while is tried a dozen times an hour.
var DefaultRetry = retry.Backoff{Base: time.Second, Max: 5 * time.Minute}

// DefaultMaxQueued is the most deliveries a sink's queue keeps: days of
// busy notices, a few megabytes of ledger.
const DefaultMaxQueued = 10_000

const (
	// handOff is how many notices may wait between Notify and the ledger.
	handOff = 1024
	// page is how many deliveries a sink reads from its queue at once.
	page = 16
	// ledgerTimeout bounds one write of the queue.
	ledgerTimeout = 10 * time.Second
)

// Notifier hands notices to the sinks that want them. It satisfies
// controller.Notifier and prometheus.Collector.
type Notifier struct {
	cfg    Config
	log    *slog.Logger
	client *http.Client
	in     chan budget.Notice
	prune  chan struct{} // sinks were removed: drop their queues
	quit   chan struct{}
	wg     sync.WaitGroup
	m      *metrics
	// full is set when Notify first drops a notice, until the writer
	// catches up: one log line per overflow, not one per notice.
	full atomic.Bool

	mu      sync.Mutex
	sinks   map[string]*sink
	stopped bool
}

// sink is one listed sink and its delivery goroutine.
type sink struct {
	name   string
	conf   atomic.Pointer[budget.NotifySink] // replaced by a reload
	wake   chan struct{}                     // a delivery was queued
	cancel context.CancelFunc
}

// Start starts the writer and one delivery goroutine per sink; deliveries
// a previous run left queued resume at once.
func Start(cfg Config) *Notifier {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Retry.Base <= 0 {
		cfg.Retry = DefaultRetry
	}
	if cfg.MaxQueued <= 0 {
		cfg.MaxQueued = DefaultMaxQueued
	}
	n := &Notifier{cfg: cfg, log: cfg.Log, client: newClient(), in: make(chan budget.Notice, handOff),
		prune: make(chan struct{}, 1), quit: make(chan struct{}), m: newMetrics(cfg.Queue), sinks: map[string]*sink{}}
	n.SetSinks(cfg.Sinks)
	n.wg.Add(1)
	go n.write()
	return n
}

// Notify hands a notice over without waiting: when the hand-off is full
// (the ledger stalls), the notice is dropped and counted for each sink
// that wanted it.
func (n *Notifier) Notify(x budget.Notice) {
	select {
	case n.in <- x:
	default:
		n.dropped(x)
	}
}

// dropped counts a notice the hand-off had no room for.
func (n *Notifier) dropped(x budget.Notice) {
	for _, s := range n.current() {
		if s.conf.Load().Wants(x.Kind) {
			n.m.drop(s.name, 1)
		}
	}
	if !n.full.Swap(true) {
		n.log.Warn("notifications dropped: the queue's hand-off is full (the ledger is not keeping up)", "kind", x.Kind, "bottle", x.Bottle)
	}
}

// SetSinks puts a reload's sinks in force: new ones start delivering, a
// changed one delivers its next attempt with its new settings, and the
// queues of removed ones are dropped.
func (n *Notifier) SetSinks(list []budget.NotifySink) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stopped {
		return
	}
	keep := map[string]bool{}
	for _, conf := range list {
		keep[conf.Name] = true
		if s, ok := n.sinks[conf.Name]; ok {
			s.conf.Store(&conf)
			continue
		}
		n.startLocked(conf)
	}
	for name, s := range n.sinks {
		if !keep[name] {
			s.cancel()
			delete(n.sinks, name)
		}
	}
	select {
	case n.prune <- struct{}{}:
	default:
	}
}

// startLocked starts a sink's delivery goroutine. n.mu must be held.
func (n *Notifier) startLocked(conf budget.NotifySink) {
	ctx, cancel := context.WithCancel(context.Background())
	s := &sink{name: conf.Name, wake: make(chan struct{}, 1), cancel: cancel}
	s.conf.Store(&conf)
	n.sinks[conf.Name] = s
	n.m.listed(conf.Name)
	n.wg.Add(1)
	go n.run(ctx, s)
}

// current are the sinks in force.
func (n *Notifier) current() []*sink {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]*sink, 0, len(n.sinks))
	for _, s := range n.sinks {
		out = append(out, s)
	}
	return out
}

// Stop ends every delivery in progress (it stays queued for the next
// start), writes the notices still in the hand-off to the queue and
// returns when every goroutine has.
func (n *Notifier) Stop() {
	n.mu.Lock()
	if n.stopped {
		n.mu.Unlock()
		return
	}
	n.stopped = true
	for _, s := range n.sinks {
		s.cancel()
	}
	n.mu.Unlock()
	close(n.quit)
	n.wg.Wait()
}

// write is the writer goroutine: it queues what Notify hands over, a
// batch at a time, and drops the queues of sinks no longer listed.
func (n *Notifier) write() {
	defer n.wg.Done()
	for {
		select {
		case x := <-n.in:
			n.queue(append([]budget.Notice{x}, n.drain()...))
		case <-n.prune:
			n.dropUnlisted()
		case <-n.quit:
			n.queue(n.drain())
			return
		}
	}
}

// drain takes what else waits in the hand-off, at most a hand-off's worth.
func (n *Notifier) drain() []budget.Notice {
	var out []budget.Notice
	for len(out) < handOff {
		select {
		case x := <-n.in:
			out = append(out, x)
		default:
			return out
		}
	}
	return out
}

// queue writes one delivery per notice and sink that wants it, then
// wakes those sinks.
func (n *Notifier) queue(notices []budget.Notice) {
	sinks := n.current()
	var ds []budget.Delivery
	for _, x := range notices {
		x.ID, x.Host = rand.Text(), n.cfg.Host
		body, _ := json.Marshal(x) // a Notice always marshals
		for _, s := range sinks {
			if s.conf.Load().Wants(x.Kind) {
				ds = append(ds, budget.Delivery{Sink: s.name, Kind: x.Kind, Body: body})
			}
		}
	}
	n.full.Store(false)
	if len(ds) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), ledgerTimeout)
	defer cancel()
	dropped, err := n.cfg.Queue.QueueNotices(ctx, ds, n.cfg.MaxQueued)
	if err != nil {
		n.log.Error("notifications not queued, and so lost", "notices", len(notices), "err", err)
		for _, d := range ds {
			n.m.drop(d.Sink, 1)
		}
		return
	}
	for name, k := range dropped {
		n.m.drop(name, k)
		n.log.Warn("notification queue full: its oldest notices dropped", "sink", name, "dropped", k, "kept", n.cfg.MaxQueued)
	}
	for _, s := range sinks {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// dropUnlisted drops the queues of sinks the settings no longer list.
func (n *Notifier) dropUnlisted() {
	var keep []string
	for _, s := range n.current() {
		keep = append(keep, s.name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), ledgerTimeout)
	defer cancel()
	dropped, err := n.cfg.Queue.DropNotices(ctx, keep)
	if err != nil {
		n.log.Error("drop the notifications of sinks no longer listed", "err", err)
		return
	}
	for name, k := range dropped {
		n.m.drop(name, k)
		n.log.Warn("notifications dropped: their sink is no longer in settings", "sink", name, "dropped", k)
	}
}
