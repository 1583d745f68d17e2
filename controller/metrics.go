package controller

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the daemon's Prometheus metrics, in a registry of its own so
// tests can run several daemons in one process.
type metrics struct {
	reg        *prometheus.Registry
	reports    *prometheus.CounterVec
	verdicts   *prometheus.CounterVec
	actionsCtr *prometheus.CounterVec
	// refusedConns and droppedSubs count what the limits turned away.
	refusedConns, droppedSubs prometheus.Counter
	// allowed and denied are resolved once: the gate is the hot path.
	allowed, denied prometheus.Counter
}

func newMetrics(c *Core, more []prometheus.Collector) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.reports = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bottlecap_reports_total", Help: "Usage reports acknowledged, by result (accepted or duplicate).",
	}, []string{"result"})
	m.verdicts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bottlecap_verdicts_total", Help: "Gate verdicts answered, by allowed.",
	}, []string{"allowed"})
	m.actionsCtr = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bottlecap_actions_total", Help: "Enforcement actions by kind and status reached.",
	}, []string{"action", "status"})
	m.refusedConns = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "bottlecap_connections_refused_total", Help: "Connections refused because their peer had as many open as its cap.",
	})
	m.droppedSubs = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "bottlecap_event_subscribers_dropped_total", Help: "Event subscribers dropped for falling behind.",
	})
	subs := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "bottlecap_event_subscribers", Help: "Open /v1/events streams.",
	}, func() float64 { return float64(c.hub.count()) })
	m.reg.MustRegister(m.reports, m.verdicts, m.actionsCtr, m.refusedConns, m.droppedSubs, subs, &bookCollector{c: c})
	m.reg.MustRegister(more...)
	m.allowed, m.denied = m.verdicts.WithLabelValues("true"), m.verdicts.WithLabelValues("false")
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

func (m *metrics) ingested(accepted, duplicates int) {
	m.reports.WithLabelValues("accepted").Add(float64(accepted))
	m.reports.WithLabelValues("duplicate").Add(float64(duplicates))
}

func (m *metrics) verdict(allowed bool) {
	if allowed {
		m.allowed.Inc()
	} else {
		m.denied.Inc()
	}
}

func (m *metrics) action(kind, status string) {
	m.actionsCtr.WithLabelValues(kind, status).Inc()
}

// bookCollector reports the book's usage, limits and bottle states at
// scrape time, so they are never stale.
type bookCollector struct{ c *Core }

var (
	usedDesc  = prometheus.NewDesc("bottlecap_used_tokens", "Counted tokens used, by scope.", []string{"scope", "id", "provider"}, nil)
	heldDesc  = prometheus.NewDesc("bottlecap_held_tokens", "Counted tokens held by allowances (granted, not yet reported), by scope.", []string{"scope", "id", "provider"}, nil)
	allowDesc = prometheus.NewDesc("bottlecap_allowances", "Allowances live.", nil, nil)
	limitDesc = prometheus.NewDesc("bottlecap_limit_tokens", "Token limit, by scope.", []string{"scope", "id", "provider"}, nil)
	// A windowed limit's usage is its window's, not the lifetime count of
	// bottlecap_used_tokens; window is day, week, month or the rolling span.
	windowUsedDesc  = prometheus.NewDesc("bottlecap_window_used_tokens", "Counted tokens used in a windowed limit's current window, by scope.", []string{"scope", "id", "provider", "window"}, nil)
	windowLimitDesc = prometheus.NewDesc("bottlecap_window_limit_tokens", "Windowed token limit, by scope.", []string{"scope", "id", "provider", "window"}, nil)
	bottleDesc      = prometheus.NewDesc("bottlecap_bottles", "Bottles known, by state.", []string{"state"}, nil)
)

func (c *bookCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- usedDesc
	ch <- heldDesc
	ch <- allowDesc
	ch <- limitDesc
	ch <- windowUsedDesc
	ch <- windowLimitDesc
	ch <- bottleDesc
}

func (c *bookCollector) Collect(ch chan<- prometheus.Metric) {
	core := c.c
	now := core.now()
	core.mu.Lock()
	defer core.mu.Unlock()
	core.sweepLocked(now)
	limits := core.book.GlobalLimits()
	providers := core.book.Providers()
	for _, p := range providers {
		_, _, used := core.book.Used("", "", p)
		_, _, held := core.book.Held("", "", p)
		ch <- prometheus.MustNewConstMetric(usedDesc, prometheus.GaugeValue, float64(used), "global", "-", p)
		ch <- prometheus.MustNewConstMetric(heldDesc, prometheus.GaugeValue, float64(held), "global", "-", p)
		collectLimits(ch, core.book, limits[p], "global", "-", "", p)
	}
	states := map[budget.State]int{}
	for _, b := range core.book.Bottles() {
		states[b.State]++
		for p, l := range b.Budget {
			_, sub, _ := core.book.Used(b.Slug, b.Agent, p)
			ch <- prometheus.MustNewConstMetric(usedDesc, prometheus.GaugeValue, float64(sub), "bottle", b.Slug, p)
			collectLimits(ch, core.book, l, "bottle", b.Slug, b.Slug, p)
		}
		collectHeld(ch, core.book, b, providers)
	}
	ch <- prometheus.MustNewConstMetric(allowDesc, prometheus.GaugeValue, float64(len(core.allow.byID)))
	for st, n := range states {
		ch <- prometheus.MustNewConstMetric(bottleDesc, prometheus.GaugeValue, float64(n), fmt.Sprint(st))
	}
}

// collectLimits sends a scope's limits for a provider: a lifetime limit
// as bottlecap_limit_tokens, a windowed one with its window's usage.
// bottle is the bottle whose subtree the scope counts ("" for global).
func collectLimits(ch chan<- prometheus.Metric, book *budget.Book, set budget.LimitSet, scope, id, bottle, p string) {
	for _, l := range set {
		if l.Window == budget.LifeWindow {
			ch <- prometheus.MustNewConstMetric(limitDesc, prometheus.GaugeValue, float64(l.Tokens), scope, id, p)
			continue
		}
		_, sub, global := book.UsedIn(l.Window, bottle, "", p)
		used, w := sub, l.Window.String()
		if bottle == "" {
			used = global
		}
		ch <- prometheus.MustNewConstMetric(windowLimitDesc, prometheus.GaugeValue, float64(l.Tokens), scope, id, p, w)
		ch <- prometheus.MustNewConstMetric(windowUsedDesc, prometheus.GaugeValue, float64(used), scope, id, p, w)
	}
}

// collectHeld sends what allowances hold over a bottle's subtree, for
// every provider its budget limits or anything holds.
func collectHeld(ch chan<- prometheus.Metric, book *budget.Book, b budget.Bottle, providers []string) {
	for _, p := range providers {
		_, held, _ := book.Held(b.Slug, b.Agent, p)
		if _, limited := b.Budget[p]; held > 0 || limited {
			ch <- prometheus.MustNewConstMetric(heldDesc, prometheus.GaugeValue, float64(held), "bottle", b.Slug, p)
		}
	}
}

// queryInt reads an optional non-negative integer query parameter.
func queryInt(r *http.Request, name string, def int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w: %s: %q is not a whole non-negative number", budget.ErrInvalid, name, v)
	}
	return n, nil
}
