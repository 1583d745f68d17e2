package notify

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics count what became of the notices, by sink.
type metrics struct {
	queue                        Queue
	delivers, failures, droppeds *prometheus.CounterVec
}

var pendingDesc = prometheus.NewDesc("bottlecap_notify_pending", "Notifications queued in the ledger and not yet taken by their sink.", []string{"sink"}, nil)

func newMetrics(q Queue) *metrics {
	return &metrics{
		queue: q,
		delivers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bottlecap_notify_delivered_total", Help: "Notifications a sink took.",
		}, []string{"sink"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bottlecap_notify_failures_total", Help: "Delivery attempts that failed (each is retried).",
		}, []string{"sink"}),
		droppeds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bottlecap_notify_dropped_total", Help: "Notifications dropped undelivered: the queue full, or the sink no longer listed.",
		}, []string{"sink"}),
	}
}

// listed makes a sink's series exist from the start, at 0.
func (m *metrics) listed(sink string) {
	m.delivers.WithLabelValues(sink)
	m.failures.WithLabelValues(sink)
	m.droppeds.WithLabelValues(sink)
}

func (m *metrics) delivered(sink string)   { m.delivers.WithLabelValues(sink).Inc() }
func (m *metrics) failed(sink string)      { m.failures.WithLabelValues(sink).Inc() }
func (m *metrics) drop(sink string, n int) { m.droppeds.WithLabelValues(sink).Add(float64(n)) }

// Describe is prometheus.Collector's.
func (n *Notifier) Describe(ch chan<- *prometheus.Desc) {
	n.m.delivers.Describe(ch)
	n.m.failures.Describe(ch)
	n.m.droppeds.Describe(ch)
	ch <- pendingDesc
}

// Collect is prometheus.Collector's: the counters, and each listed sink's
// queue as the ledger holds it at scrape time.
func (n *Notifier) Collect(ch chan<- prometheus.Metric) {
	n.m.delivers.Collect(ch)
	n.m.failures.Collect(ch)
	n.m.droppeds.Collect(ch)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	counts, err := n.cfg.Queue.NoticeCounts(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(pendingDesc, err)
		return
	}
	for _, s := range n.current() {
		ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, float64(counts[s.name]), s.name)
	}
}
