package budget

// counters are one kind of token count the book keeps, committed usage or
// tokens held by allowances: per bottle (its own, per agent and, while it
// is registered, over its subtree) and host-wide per provider. Every count
// saturates at MaxCounted on the way up and stops at 0 on the way down.
type counters struct {
	tallies map[string]*tally // by bottle slug, registered or not
	global  map[string]int64  // provider
}

// tally is one bottle's counts: its own per provider and per (agent,
// provider), and, while it is registered, the sum over its subtree.
type tally struct {
	own     map[string]int64
	agents  map[agentProvider]int64
	subtree map[string]int64
}

type agentProvider struct{ agent, provider string }

func newCounters() counters {
	return counters{tallies: map[string]*tally{}, global: map[string]int64{}}
}

// tally returns slug's counts, creating them; a registered bottle's
// subtree map always exists.
func (c *counters) tally(slug string, registered bool) *tally {
	t, ok := c.tallies[slug]
	if !ok {
		t = &tally{own: map[string]int64{}, agents: map[agentProvider]int64{}}
		c.tallies[slug] = t
	}
	if t.subtree == nil && registered {
		t.subtree = map[string]int64{}
	}
	return t
}

// subtree is a registered bottle's subtree sums (nil for any other slug).
func (c *counters) subtree(slug string) map[string]int64 {
	if t, ok := c.tallies[slug]; ok {
		return t.subtree
	}
	return nil
}

// agent is one agent's count within a bottle for a provider.
func (c *counters) agent(slug, agent, provider string) int64 {
	if t, ok := c.tallies[slug]; ok {
		return t.agents[agentProvider{agent, provider}]
	}
	return 0
}

// read is the count of one agent, one bottle's subtree and the whole host
// for a provider.
func (c *counters) read(slug, agent, provider string) (agentN, subtree, global int64) {
	if t, ok := c.tallies[slug]; ok {
		agentN, subtree = t.agents[agentProvider{agent, provider}], t.subtree[provider]
	}
	return agentN, subtree, c.global[provider]
}

// add counts n tokens for (slug, agent, provider) at the agent, the
// bottle, each bottle of its lineage (the bottle itself when registered,
// then its registered ancestors) and the host.
func (c *counters) add(slug, agent, provider string, n int64, lineage []string) {
	t := c.tally(slug, len(lineage) > 0)
	ap := agentProvider{agent, provider}
	t.agents[ap] = SatAdd(t.agents[ap], n)
	t.own[provider] = SatAdd(t.own[provider], n)
	c.global[provider] = SatAdd(c.global[provider], n)
	for _, s := range lineage {
		sub := c.tally(s, true).subtree
		sub[provider] = SatAdd(sub[provider], n)
	}
}

// remove takes n tokens back from everywhere add counted them, and no
// more than (slug, agent, provider) holds, so that giving back too much
// never eats another's count. Counts that reach 0 are deleted, and so is the tally of an
// unregistered bottle left with nothing: holds come and go all day, and
// what they leave behind must not grow with them.
func (c *counters) remove(slug, agent, provider string, n int64, lineage []string) {
	t, ok := c.tallies[slug]
	if !ok {
		return
	}
	ap := agentProvider{agent, provider}
	n = min(max(n, 0), t.agents[ap])
	takeFrom(t.agents, ap, n)
	takeFrom(t.own, provider, n)
	takeFrom(c.global, provider, n)
	for _, s := range lineage {
		takeFrom(c.tally(s, true).subtree, provider, n)
	}
	c.prune(slug, t)
}

// prune deletes the tally of an unregistered bottle that counts nothing.
func (c *counters) prune(slug string, t *tally) {
	if t.subtree == nil && len(t.own) == 0 && len(t.agents) == 0 {
		delete(c.tallies, slug)
	}
}

// takeFrom lowers m[k] by n, deleting it at 0.
func takeFrom[K comparable](m map[K]int64, k K, n int64) {
	if v := max(m[k]-n, 0); v > 0 {
		m[k] = v
	} else {
		delete(m, k)
	}
}

// detach drops a forgotten bottle's subtree sums (its own counts stay, as
// they did before it registered).
func (c *counters) detach(slug string) {
	if t, ok := c.tallies[slug]; ok {
		t.subtree = nil
		c.prune(slug, t)
	}
}
