package meter

import (
	"sync"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
)

// verdictCache keeps the gate's recent "allowed" answers per provider for a
// short time, so a burst of requests costs one gate question, not one
// each. A denial is never kept (every refused request asks again, so a
// restore takes effect at once), and a report acknowledgement whose
// verdict says the budget is now exhausted drops the entry at once.
type verdictCache struct {
	ttl     time.Duration
	mu      sync.Mutex
	allowed map[string]time.Time // provider -> when the allowed verdict expires
}

func newVerdictCache(ttl time.Duration) *verdictCache {
	return &verdictCache{ttl: ttl, allowed: map[string]time.Time{}}
}

// fresh reports whether provider was allowed less than ttl ago.
func (c *verdictCache) fresh(provider string) bool {
	if c.ttl <= 0 {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	exp, ok := c.allowed[provider]
	return ok && time.Now().Before(exp)
}

// note records a verdict: an allowed one is kept for ttl, any other drops
// what was kept.
func (c *verdictCache) note(provider string, v budget.Verdict) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if v.Allowed {
		c.allowed[provider] = time.Now().Add(c.ttl)
	} else {
		delete(c.allowed, provider)
	}
}
