package simhost

import (
	"time"

	"github.com/bot-bottle/bottlecap/budget"
)

// Settings are the demo host's settings: a global budget, a default for
// reviewer agents and cost weights for cached input.
const Settings = `budget:
  claude: 3M
  codex: 1M
warn_at: 80%
agents:
  reviewer:
    budget:
      codex: 150k
weights:
  claude:
    cache_read: 0.1
  codex:
    cache_read: 0.1
`

// Bottle is one simulated bottle: how it registers and how often its
// sidecar reports a response (at speed 1).
type Bottle struct {
	Slug, Parent, Agent, Provider string
	Budget                        budget.Limits
	Shutdown                      string
	Every                         time.Duration
	// Register says whether the bottle is registered before it reports;
	// one that is not is governed by the global budget alone.
	Register bool
}

// Bottles are a planner with two implementers and a reviewer below it,
// plus a stray bottle nobody registered (the global budget governs it).
// Budgets are sized so that at speed 1 the first warning comes within
// about 15 seconds and the first cutoff within about half a minute.
var Bottles = []Bottle{
	{Slug: "planner-7f3a2", Agent: "planner", Provider: "claude", Every: 3 * time.Second, Register: true,
		Budget: budget.Limits{"claude": budget.Lifetime(500_000), "codex": budget.Lifetime(400_000)}},
	{Slug: "implementer-a1c9e", Parent: "planner-7f3a2", Agent: "implementer", Provider: "claude", Every: 2 * time.Second, Register: true,
		Budget: budget.Limits{"claude": budget.Lifetime(200_000)}},
	{Slug: "implementer-b4d07", Parent: "planner-7f3a2", Agent: "implementer", Provider: "claude", Every: 1500 * time.Millisecond, Register: true,
		Budget: budget.Limits{"claude": budget.Lifetime(100_000)}, Shutdown: "freeze"},
	{Slug: "reviewer-e2f18", Parent: "planner-7f3a2", Agent: "reviewer", Provider: "codex", Every: 4 * time.Second, Register: true},
	{Slug: "stray-9c1d0", Agent: "coder", Provider: "codex", Every: 5 * time.Second},
}
