package controller

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"strconv"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the daemon's Prometheus metrics (SPEC section 13), in a
// registry of its own so tests can run several daemons in one process.
type metrics struct {
	reg        *prometheus.Registry
	reports    *prometheus.CounterVec
	verdicts   *prometheus.CounterVec
	actionsCtr *prometheus.CounterVec
	tokens     *tokenMetrics
	// refusedConns and droppedSubs count what the limits turned away.
	refusedConns, droppedSubs prometheus.Counter
	// allowed and denied are resolved once: the gate is the hot path.
	allowed, denied prometheus.Counter
	// ingestSeconds, commitSeconds and verdictSeconds time a report's
	// request, its wait for the commit, and the gate's answer.
	ingestSeconds, commitSeconds, verdictSeconds prometheus.Histogram
}

// Latency buckets: a request that waits on a commit takes milliseconds
// (an fsync), a verdict microseconds (memory only).
var (
	commitBuckets  = prometheus.ExponentialBuckets(0.0005, 2, 14)   // 0.5 ms to 4 s
	verdictBuckets = prometheus.ExponentialBuckets(0.000002, 4, 10) // 2 µs to 0.5 s
)

func newMetrics(c *Core, cfg Config) *metrics {
	m := &metrics{reg: prometheus.NewRegistry(), tokens: newTokenMetrics()}
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
	m.newHistograms()
	m.reg.MustRegister(m.reports, m.verdicts, m.actionsCtr, m.tokens.vec, m.refusedConns, m.droppedSubs, subs, &bookCollector{c: c},
		m.ingestSeconds, m.commitSeconds, m.verdictSeconds, buildInfo(cfg),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.reg.MustRegister(cfg.Collectors...)
	if cfg.Fleet != nil {
		m.reg.MustRegister(&fleetCollector{c: c, hosts: func(ctx context.Context) fleetHosts { return fleetHostsOf(cfg.Fleet(ctx)) }})
	}
	m.allowed, m.denied = m.verdicts.WithLabelValues("true"), m.verdicts.WithLabelValues("false")
	return m
}

func (m *metrics) newHistograms() {
	m.ingestSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "bottlecap_ingest_seconds", Help: "POST /v1/usage requests with a valid body, from arrival to the reply (decode, commit, count, enforce).",
		Buckets: commitBuckets,
	})
	m.commitSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "bottlecap_commit_seconds", Help: "Waits of an ingest for the group commit that holds its reports.",
		Buckets: commitBuckets,
	})
	m.verdictSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "bottlecap_verdict_seconds", Help: "Gate verdicts, from the request reaching the core to its answer (memory only).",
		Buckets: verdictBuckets,
	})
}

// buildInfo is bottlecap_build_info: 1, with what was built.
func buildInfo(cfg Config) prometheus.Collector {
	commit := cfg.Commit
	if commit == "" {
		commit = "unknown"
	}
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "bottlecap_build_info", Help: "Always 1; its labels say which bottlecap runs.",
	}, []string{"version", "commit", "goversion"})
	g.WithLabelValues(cfg.Version, commit, runtime.Version()).Set(1)
	return g
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// ingested counts acknowledged reports, and the tokens of those counted
// (fresh ones: a duplicate was counted the first time).
func (m *metrics) ingested(accepted, duplicates int, fresh []budget.Report) {
	m.reports.WithLabelValues("accepted").Add(float64(accepted))
	m.reports.WithLabelValues("duplicate").Add(float64(duplicates))
	m.tokens.add(fresh)
}

func (m *metrics) verdict(allowed bool, started time.Time) {
	if allowed {
		m.allowed.Inc()
	} else {
		m.denied.Inc()
	}
	m.verdictSeconds.Observe(time.Since(started).Seconds())
}

func (m *metrics) action(kind, status string) {
	m.actionsCtr.WithLabelValues(kind, status).Inc()
}

// bookCollector reports the book's usage, limits and bottle states at
// scrape time, so they are never stale. The gauges of a limit carry the
// window it counts over: "life" for a lifetime limit, day, week, month or
// the rolling span (SPEC section 12) for a windowed one.
type bookCollector struct{ c *Core }

// lifeWindow is the window label of a lifetime limit's gauges.
var lifeWindow = budget.LifeWindow.String()

var (
	scopeLabels = []string{"scope", "id", "provider", "window"}
	usedDesc    = prometheus.NewDesc("bottlecap_used_tokens", "Counted tokens used, by scope and window.", scopeLabels, nil)
	limitDesc   = prometheus.NewDesc("bottlecap_limit_tokens", "Token limit, by scope and window.", scopeLabels, nil)
	remainDesc  = prometheus.NewDesc("bottlecap_remaining_tokens", "Counted tokens a scope may still grant: its limit less what is used and held, at least 0.", scopeLabels, nil)
	heldDesc    = prometheus.NewDesc("bottlecap_held_tokens", "Counted tokens held by allowances (granted, not yet reported), by scope.", []string{"scope", "id", "provider"}, nil)
	allowDesc   = prometheus.NewDesc("bottlecap_allowances", "Allowances live.", nil, nil)
	bottleDesc  = prometheus.NewDesc("bottlecap_bottles", "Bottles known, by state.", []string{"state"}, nil)
	blockedDesc = prometheus.NewDesc("bottlecap_bottle_blocked", "1 for each bottle that is cut off, paused, frozen, killed or pending an action; by bottle and state.", []string{"bottle", "state"}, nil)
)

func (c *bookCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{usedDesc, limitDesc, remainDesc, heldDesc, allowDesc, bottleDesc, blockedDesc} {
		ch <- d
	}
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
		ch <- gauge(heldDesc, held, "global", "-", p)
		collectScope(ch, core.book, scopeUse{used: used, held: held}, limits[p], "global", "-", "", p)
	}
	states := map[budget.State]int{}
	for _, b := range core.book.Bottles() {
		states[b.State]++
		if b.State.Blocked() {
			ch <- prometheus.MustNewConstMetric(blockedDesc, prometheus.GaugeValue, 1, b.Slug, string(b.State))
		}
		for p, set := range core.book.BottleLimits(b.Slug) {
			_, used, _ := core.book.Used(b.Slug, b.Agent, p)
			_, held, _ := core.book.Held(b.Slug, b.Agent, p)
			collectScope(ch, core.book, scopeUse{used: used, held: held}, set, "bottle", b.Slug, b.Slug, p)
		}
		collectHeld(ch, core.book, b.Slug, b.Agent, providers)
	}
	ch <- prometheus.MustNewConstMetric(allowDesc, prometheus.GaugeValue, float64(len(core.allow.byID)))
	for st, n := range states {
		ch <- prometheus.MustNewConstMetric(bottleDesc, prometheus.GaugeValue, float64(n), fmt.Sprint(st))
	}
}

// scopeUse is what a scope has used and what allowances hold of it.
type scopeUse struct{ used, held int64 }

// collectScope sends a scope's lifetime usage for a provider and, for each
// of its limits, the limit, what remains of it and, for a windowed limit,
// its window's usage (window "day", "week", "month" or the rolling span).
// bottle is the bottle whose subtree the scope counts ("" for global).
func collectScope(ch chan<- prometheus.Metric, book *budget.Book, u scopeUse, set budget.LimitSet, scope, id, bottle, p string) {
	ch <- gauge(usedDesc, u.used, scope, id, p, lifeWindow)
	for _, l := range set {
		used, w := u.used, l.Window.String()
		if l.Window != budget.LifeWindow {
			_, sub, global := book.UsedIn(l.Window, bottle, "", p)
			used = sub
			if bottle == "" {
				used = global
			}
			ch <- gauge(usedDesc, used, scope, id, p, w)
		}
		ch <- gauge(limitDesc, l.Tokens, scope, id, p, w)
		ch <- gauge(remainDesc, max(l.Tokens-used-u.held, 0), scope, id, p, w)
	}
}

func gauge(d *prometheus.Desc, v int64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
}

// collectHeld sends what allowances hold over a bottle's subtree, for
// every provider its budget limits or anything holds.
func collectHeld(ch chan<- prometheus.Metric, book *budget.Book, slug, agent string, providers []string) {
	limits := book.BottleLimits(slug)
	for _, p := range providers {
		_, held, _ := book.Held(slug, agent, p)
		if _, limited := limits[p]; held > 0 || limited {
			ch <- gauge(heldDesc, held, "bottle", slug, p)
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
