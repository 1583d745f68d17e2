package tui

import (
	"context"
	"sync"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
)

// Sampler derives usage windows from successive Totals when the store has
// no windowed query: each observation's growth since the previous one is
// attributed to the moment it was seen. Burn rates therefore start at zero
// when the dashboard starts and fill in as it runs.
type Sampler struct {
	mu    sync.Mutex
	prev  map[agentProvider]int64
	slots map[agentProvider][]slot
}

// slot is growth seen within one sampleSlot.
type slot struct {
	at time.Time
	n  int64
}

// sampleSlot is the granularity the sampler keeps growth at.
const sampleSlot = 10 * time.Second

// NewSampler returns a sampler with no observations yet.
func NewSampler() *Sampler {
	return &Sampler{slots: map[agentProvider][]slot{}}
}

// Observe records the totals read at now. The first observation only sets
// the baseline: usage from before the dashboard started is not a burn.
func (s *Sampler) Observe(now time.Time, totals []budget.Total) {
	s.mu.Lock()
	defer s.mu.Unlock()
	first := s.prev == nil
	cur := make(map[agentProvider]int64, len(totals))
	at := now.Truncate(sampleSlot)
	for _, t := range totals {
		k := agentProvider{t.Bottle, t.Agent, t.Provider}
		cur[k] = t.Counted
		if d := t.Counted - s.prev[k]; !first && d > 0 {
			s.add(k, at, d)
		}
	}
	s.prev = cur
	s.prune(now.Add(-seriesBuckets * seriesStep))
}

func (s *Sampler) add(k agentProvider, at time.Time, n int64) {
	sl := s.slots[k]
	if len(sl) > 0 && sl[len(sl)-1].at.Equal(at) {
		sl[len(sl)-1].n += n
		return
	}
	s.slots[k] = append(sl, slot{at, n})
}

func (s *Sampler) prune(before time.Time) {
	for k, sl := range s.slots {
		i := 0
		for i < len(sl) && sl[i].at.Before(before) {
			i++
		}
		if i == len(sl) {
			delete(s.slots, k)
		} else if i > 0 {
			s.slots[k] = append([]slot(nil), sl[i:]...)
		}
	}
}

// UsageBuckets regroups the sampled growth into step-wide buckets from
// since.
func (s *Sampler) UsageBuckets(_ context.Context, since time.Time, step time.Duration) ([]budget.UsageBucket, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []budget.UsageBucket
	for k, sl := range s.slots {
		idx := map[int64]int{}
		for _, x := range sl {
			if x.at.Before(since) {
				continue
			}
			b := int64(x.at.Sub(since) / step)
			i, ok := idx[b]
			if !ok {
				i = len(out)
				idx[b] = i
				out = append(out, budget.UsageBucket{Bottle: k.bottle, Agent: k.agent, Provider: k.provider,
					Start: since.Add(time.Duration(b) * step)})
			}
			out[i].Counted += x.n
		}
	}
	return out, nil
}
