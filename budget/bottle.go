package budget

import (
	"fmt"
	"regexp"
	"time"
)

// Bottle is one running sandbox as the daemon knows it. Budgets given here
// (at registration or through labels) override the settings' defaults
// for the bottle's manifest name and agent names; runtime limits, kept
// apart (Book.SetRuntime), override them all.
type Bottle struct {
	Slug   string `json:"slug"`
	Agent  string `json:"agent,omitempty"`
	Name   string `json:"name,omitempty"`
	Parent string `json:"parent,omitempty"`
	// Budget and AgentBudgets are the limits its registration gave
	// (SourceRegistration); LabelBudget those its containers' labels
	// gave (SourceLabel). For one provider, whichever came last replaces
	// the other, so the two never both hold it.
	Budget       Limits            `json:"budget,omitempty"`
	LabelBudget  Limits            `json:"label_budget,omitempty"`
	AgentBudgets map[string]Limits `json:"agent_budgets,omitempty"`
	Shutdown     Policy            `json:"shutdown,omitempty"`
	// Rate is the bottle's own rate guard (SPEC section 12): tokens per
	// minute per provider, over the settings' defaults.
	Rate       Rates    `json:"rate,omitempty"`
	Containers []string `json:"containers,omitempty"`
	State      State    `json:"state"`
	// StateReason says why the bottle is in its state (the budget that
	// tripped, or the operator's reason).
	StateReason string `json:"state_reason,omitempty"`
	// ByOperator is true when an operator set the current state: an
	// operator's cutoff is lifted only by an operator, and a bottle an
	// operator restored is not cut off again for a budget that was already
	// exhausted.
	ByOperator bool `json:"by_operator,omitempty"`
	// ByRateGuard is true when the rate guard set the current state: the
	// guard lifts what it did itself once the bottle's rate has stayed
	// under it for a minute, and nothing else (a raised budget, a reset)
	// lifts it.
	ByRateGuard bool `json:"by_rate_guard,omitempty"`
	// Implicit is true for a bottle registered on the fly by its first
	// report; the global scope governs it until it is registered properly.
	Implicit  bool      `json:"implicit,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// AgentName is the agent a report names, or the bottle's own agent.
func (b *Bottle) AgentName(agent string) string {
	if agent != "" {
		return agent
	}
	return b.Agent
}

var slugPattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)

// ValidateSlug accepts the slugs bot-bottle makes (and Docker Compose
// accepts as project-name suffixes).
func ValidateSlug(field, s string) error {
	if !slugPattern.MatchString(s) {
		return fmt.Errorf("%w: %s %q: want 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit", ErrInvalid, field, s)
	}
	return nil
}

// ValidateName accepts agent and provider names: like slugs.
func ValidateName(field, s string) error { return ValidateSlug(field, s) }
