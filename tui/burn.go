package tui

import (
	"sort"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
)

type bottleProvider struct{ bottle, provider string }
type agentProvider struct{ bottle, agent, provider string }

// burns are burn rates in tokens per minute over the last burnBuckets
// buckets, at every scope a budget can have.
type burns struct {
	agent   map[agentProvider]float64
	subtree map[bottleProvider]float64 // the bottle and its descendants
	global  map[string]float64
}

// newBurns sums the recent buckets; each bottle's burn also counts toward
// every registered ancestor, as its usage does.
func newBurns(buckets []budget.UsageBucket, now time.Time, book *budget.Book) *burns {
	b := &burns{agent: map[agentProvider]float64{}, subtree: map[bottleProvider]float64{}, global: map[string]float64{}}
	from := now.Add(-burnBuckets * seriesStep)
	minutes := float64(burnBuckets*seriesStep) / float64(time.Minute)
	parents := map[string]string{}
	lineages := map[string][]string{}
	for _, u := range buckets {
		if u.Start.Before(from) || u.Counted == 0 {
			continue
		}
		rate := float64(u.Counted) / minutes
		b.agent[agentProvider{u.Bottle, u.Agent, u.Provider}] += rate
		b.global[u.Provider] += rate
		ln, ok := lineages[u.Bottle]
		if !ok {
			ln = lineage(book, u.Bottle, parents)
			lineages[u.Bottle] = ln
		}
		for _, s := range ln {
			b.subtree[bottleProvider{s, u.Provider}] += rate
		}
	}
	return b
}

// lineage is the bottle (when registered) and its registered ancestors,
// nearest first, memoising parents.
func lineage(book *budget.Book, slug string, parents map[string]string) []string {
	var out []string
	for s := slug; s != "" && len(out) < 64; {
		p, ok := parents[s]
		if !ok {
			bt, known := book.Bottle(s)
			if !known {
				break
			}
			p = bt.Parent
			parents[s] = p
		}
		if containsSlug(out, s) {
			break
		}
		out = append(out, s)
		s = p
	}
	return out
}

func containsSlug(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// scope is the burn rate of the aggregate a scope's limit compares with.
func (b *burns) scope(s budget.Scope, provider string) float64 {
	switch s.Kind {
	case budget.ScopeAgent:
		slug, agent := splitAgentID(s.ID)
		return b.agent[agentProvider{slug, agent, provider}]
	case budget.ScopeBottle, budget.ScopeParent:
		return b.subtree[bottleProvider{s.ID, provider}]
	case budget.ScopeGlobal:
		return b.global[provider]
	}
	return 0
}

// series is one bottle's counted tokens per bucket, oldest first, over
// every agent and provider.
func series(buckets []budget.UsageBucket, slug string, now time.Time) []int64 {
	out := make([]int64, seriesBuckets)
	since := now.Add(-seriesBuckets * seriesStep)
	for _, u := range buckets {
		if u.Bottle != slug {
			continue
		}
		i := int(u.Start.Sub(since) / seriesStep)
		if i >= 0 && i < len(out) {
			out[i] += u.Counted
		}
	}
	return out
}

// BuildDetail computes the detail of one row from the snapshot's inputs:
// the per agent × provider breakdown with the verdict governing each, and
// the sparkline series. Reports and audit trail are the source's to add.
func BuildDetail(in Input, row Row) Detail {
	if in.Settings == nil {
		in.Settings = budget.DefaultSettings()
	}
	book := newBook(in)
	d := Detail{Row: row, SeriesStep: seriesStep, Series: series(in.Buckets, row.Slug, in.Now)}
	for _, t := range in.Totals {
		if t.Bottle != row.Slug {
			continue
		}
		v := book.Verdict(t.Bottle, t.Agent, t.Provider, 0)
		d.Breakdown = append(d.Breakdown, AgentUsage{Agent: t.Agent, Provider: t.Provider, Own: t.Counted, Reports: t.Reports, Verdict: v})
	}
	sort.Slice(d.Breakdown, func(i, j int) bool {
		a, b := d.Breakdown[i], d.Breakdown[j]
		if a.Agent != b.Agent {
			return a.Agent < b.Agent
		}
		return a.Provider < b.Provider
	})
	if bt, ok := book.Bottle(row.Slug); ok {
		for _, p := range row.Providers {
			d.Limits = append(d.Limits, book.LimitUses(row.Slug, bt.Agent, p)...)
		}
	}
	return d
}
