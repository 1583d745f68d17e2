package controller

import (
	"sync"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/prometheus/client_golang/prometheus"
)

// tokenMetrics is bottlecap_tokens_total{bottle,agent,provider,model,kind}:
// the raw tokens of every counted report (before weights), as counters, so
// that rate() gives a burn rate by any of its labels.
//
// Cardinality: one series per bottle, agent, provider, model and kind
// (input, cache_read, cache_write, output). Bottles are bounded by the
// host (a forgotten bottle's series are deleted) and agents and providers
// are few; models are what reports say, so only the first maxModels
// distinct names get a series of their own, and later ones are counted
// as model "other" (a report with none as "unknown").
type tokenMetrics struct {
	vec *prometheus.CounterVec

	mu sync.Mutex
	// series caches each key's four counters, so that a report costs a
	// map lookup rather than four label resolutions.
	series map[tokenKey]*[4]prometheus.Counter
	models map[string]bool
}

type tokenKey struct{ bottle, agent, provider, model string }

// maxModels is how many distinct model names get a label of their own.
const maxModels = 64

// tokenKinds are the kind label's values, in tokenCounters' order.
var tokenKinds = [4]string{"input", "cache_read", "cache_write", "output"}

func newTokenMetrics() *tokenMetrics {
	return &tokenMetrics{
		vec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bottlecap_tokens_total",
			Help: "Tokens of counted reports, unweighted, by bottle, agent, provider, model (past 64 names: other) and kind.",
		}, []string{"bottle", "agent", "provider", "model", "kind"}),
		series: map[tokenKey]*[4]prometheus.Counter{},
		models: map[string]bool{},
	}
}

// add counts reports' tokens.
func (t *tokenMetrics) add(reports []budget.Report) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range reports {
		s := t.countersLocked(tokenKey{r.Bottle, r.Agent, r.Provider, t.modelLocked(r.Model)})
		u := r.Usage
		for i, n := range [4]int64{u.Input, u.CacheRead, u.CacheWrite, u.Output} {
			if n > 0 {
				s[i].Add(float64(n))
			}
		}
	}
}

// countersLocked are a key's counters, made on first use.
func (t *tokenMetrics) countersLocked(k tokenKey) *[4]prometheus.Counter {
	s, ok := t.series[k]
	if !ok {
		s = &[4]prometheus.Counter{}
		for i, kind := range tokenKinds {
			s[i] = t.vec.WithLabelValues(k.bottle, k.agent, k.provider, k.model, kind)
		}
		t.series[k] = s
	}
	return s
}

// modelLocked is a model's label value.
func (t *tokenMetrics) modelLocked(model string) string {
	switch {
	case model == "":
		return "unknown"
	case t.models[model]:
		return model
	case len(t.models) < maxModels:
		t.models[model] = true
		return model
	}
	return "other"
}

// forget deletes a forgotten bottle's series.
func (t *tokenMetrics) forget(bottle string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k := range t.series {
		if k.bottle == bottle {
			delete(t.series, k)
		}
	}
	t.vec.DeletePartialMatch(prometheus.Labels{"bottle": bottle})
}
