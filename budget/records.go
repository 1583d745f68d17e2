package budget

import (
	"fmt"
	"time"
)

// The ledger's records: what the store keeps and its readers (the daemon,
// the dashboard) use, declared here so that they need the domain only, not
// the store nor its SQLite driver. Their JSON names follow the wire types
// of package api where one exists.

// AppendResult is the outcome of one report appended to the ledger.
type AppendResult struct {
	// Duplicate is true when the ledger already held the report's ID, so
	// it was not counted again.
	Duplicate bool `json:"duplicate"`
}

// SeqReport is a report with its place in the ledger, for a reader that
// follows the ledger in order (the fleet's shipper).
type SeqReport struct {
	Seq int64 `json:"seq"`
	Report
}

// Total is the usage aggregate of one (bottle, agent, provider), kept by the
// ledger in the same transaction as the reports it sums.
type Total struct {
	Bottle   string `json:"bottle"`
	Agent    string `json:"agent,omitempty"`
	Provider string `json:"provider,omitempty"`
	Usage    Usage  `json:"usage"`
	// Counted is the sum of the reports' weighted counts: what budgets
	// compare against.
	Counted int64     `json:"counted_tokens"`
	Reports int64     `json:"reports"`
	LastTS  time.Time `json:"last_ts"`
	// Clamped names the counts the ledger held out of range (REAL or
	// negative), with their stored values, which the read clamped.
	Clamped []string `json:"clamped,omitempty"`
}

// ScopeBudget is a runtime budget stored at one scope: (ScopeGlobal, "-"),
// (ScopeBottle, slug) or (ScopeAgent, slug+"/"+agent).
type ScopeBudget struct {
	Scope  ScopeKind `json:"scope"`
	ID     string    `json:"id"`
	Limits Limits    `json:"limits"`
}

// ActionStatus is where an enforcement action stands in the journal.
type ActionStatus string

// The journal statuses: an action is written pending before it runs, and
// finished done or failed.
const (
	StatusPending ActionStatus = "pending"
	StatusDone    ActionStatus = "done"
	StatusFailed  ActionStatus = "failed"
)

// Action is one journaled enforcement or operator action: a value written
// before it runs and finished after, so a crash in between leaves it
// pending to run again.
type Action struct {
	ID        int64        `json:"id"`
	Bottle    string       `json:"bottle"`
	Kind      ActionKind   `json:"action"`
	Reason    string       `json:"reason"`
	Operator  bool         `json:"operator"` // requested by an operator rather than a budget crossing
	Status    ActionStatus `json:"status"`
	Attempts  int          `json:"attempts"`
	LastError string       `json:"last_error,omitempty"`
	CreatedAt time.Time    `json:"created_at"`
	UpdatedAt time.Time    `json:"updated_at"`
}

// AuditEntry is one line of the append-only audit log. Hash is the SHA-256
// of this entry's content and PrevHash, so editing any entry breaks the chain
// from there on.
type AuditEntry struct {
	Seq int64     `json:"seq"`
	TS  time.Time `json:"ts"`
	// Kind is usage_crossed, warn, action_pending, action_done,
	// action_failed, operator, budget, settings…
	Kind     string `json:"kind"`
	Bottle   string `json:"bottle,omitempty"`
	Detail   string `json:"detail"`
	PrevHash string `json:"prev_hash"`
	Hash     string `json:"hash"`
}

// UsageBucket is the counted tokens of one (bottle, agent, provider) within
// [Start, Start+step) of a windowed usage query, for burn rates and
// sparklines. Buckets are aligned to the since of the query.
type UsageBucket struct {
	Bottle   string    `json:"bottle"`
	Agent    string    `json:"agent,omitempty"`
	Provider string    `json:"provider,omitempty"`
	Start    time.Time `json:"start"`
	Counted  int64     `json:"counted_tokens"`
	Reports  int64     `json:"reports"`
}

// ChainError names the first audit entry whose hash does not match, so an
// operator knows from where the log can no longer be trusted.
type ChainError struct {
	Seq    int64
	Reason string
	// Good counts the entries before Seq that verified.
	Good int64
}

// Error says which entry broke the chain and how.
func (e *ChainError) Error() string {
	return fmt.Sprintf("audit chain broken at seq %d: %s", e.Seq, e.Reason)
}
