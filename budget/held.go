package budget

import "fmt"

// Hold counts n tokens an allowance was granted for (bottle, agent,
// provider) as held: at the agent, at the bottle's subtree and each
// ancestor's, and host-wide, exactly where the usage they stand for will
// be counted. The agent must be resolved as reports resolve it. A bottle
// the book does not know holds toward the host (and its own counts, which
// join its subtree if it registers), as its usage would.
func (b *Book) Hold(bottle, agent, provider string, n int64) {
	b.held.add(bottle, agent, provider, n, b.lineage(bottle))
}

// Unhold gives back n held tokens of (bottle, agent, provider): settled by
// a report, released, or expired. Counts stop at 0.
func (b *Book) Unhold(bottle, agent, provider string, n int64) {
	b.held.remove(bottle, agent, provider, n, b.lineage(bottle))
}

// Held returns the tokens held for one agent, one bottle's subtree and
// the whole host for a provider.
func (b *Book) Held(bottle, agent, provider string) (agentHeld, subtree, global int64) {
	return b.held.read(bottle, agent, provider)
}

// Grant is how much of asked tokens an allowance for (bottle, agent,
// provider) may be granted now, with the verdict it was decided on. At
// every scope that governs the triple — under nearest the governing
// scope, under strict every scope with a limit — used + held + the grant
// stays within the limit: the verdict's Remaining is that room. Nothing
// is granted while the bottle is blocked or its budget exhausted, all of
// it when no scope limits the provider. When less than asked is granted
// the verdict's Reason says why. Grant holds nothing itself; the caller
// holds the grant in the same critical section.
func (b *Book) Grant(bottle, agent, provider string, asked int64) (int64, Verdict) {
	v := b.Verdict(bottle, agent, provider, 0)
	asked = max(asked, 0)
	switch {
	case !v.Allowed:
		return 0, v
	case v.Unlimited:
		return asked, v
	case v.Remaining < asked:
		v.Reason = fmt.Sprintf("only %d of the %d %s tokens asked are left in the %s: %d of %d used%s",
			v.Remaining, asked, provider, v.Scope, v.Used, v.Limit, heldNote(v.Held))
		return v.Remaining, v
	}
	return asked, v
}

// heldNote says what allowances hold, when they hold anything.
func heldNote(held int64) string {
	if held == 0 {
		return ""
	}
	return fmt.Sprintf(", %d held by allowances", held)
}
