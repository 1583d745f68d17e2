// Package store is bottlecap's ledger: a WAL-mode SQLite file that the
// daemon alone writes. It holds usage reports, per-(bottle, agent, provider)
// aggregates kept in the same transaction, bottles, runtime budgets, the
// enforcement journal, cutoff memos and the hash-chained audit log.
package store

import (
	"context"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
)

// Repository is what the daemon needs of a ledger. *DB implements it; the
// interface exists so the daemon can be tested against, or later run on,
// another engine.
type Repository interface {
	// AppendReports commits reports in one transaction, updating the
	// aggregates in the same transaction. A report whose ID is already in the
	// ledger is not stored again and is flagged Duplicate in its result.
	// Results are in the order of reports.
	AppendReports(ctx context.Context, reports []budget.Report) ([]AppendResult, error)
	// Totals returns every (bottle, agent, provider) aggregate.
	Totals(ctx context.Context) ([]Total, error)
	// Writable returns nil when the ledger takes writes, else why not.
	Writable(ctx context.Context) error
	// RecentReports returns up to limit reports of a bottle, newest first.
	RecentReports(ctx context.Context, bottle string, limit int) ([]budget.Report, error)

	// PutBottle inserts or replaces a bottle.
	PutBottle(ctx context.Context, b budget.Bottle) error
	// Bottle returns one bottle, or an error wrapping budget.ErrNotFound.
	Bottle(ctx context.Context, slug string) (budget.Bottle, error)
	// Bottles returns every bottle, ordered by slug.
	Bottles(ctx context.Context) ([]budget.Bottle, error)
	// DeleteBottle forgets a bottle (its reports stay in the ledger).
	DeleteBottle(ctx context.Context, slug string) error
	// SetBottleState changes a bottle's state.
	SetBottleState(ctx context.Context, slug string, s budget.State) error

	// PutBudget sets runtime limits at a scope: (ScopeGlobal, "-"),
	// (ScopeBottle, slug) or (ScopeAgent, slug+"/"+agent). Providers not in
	// limits are left as they are.
	PutBudget(ctx context.Context, scope budget.ScopeKind, id string, limits budget.Limits) error
	// Budgets returns every runtime budget.
	Budgets(ctx context.Context) ([]ScopeBudget, error)

	// MarkWarned records that the warn threshold of (scope, id, provider)
	// was crossed, and reports whether this is the first time.
	MarkWarned(ctx context.Context, scope budget.ScopeKind, id, provider string) (first bool, err error)
	// ClearWarned forgets the warn markers of a scope (after its budget rose).
	ClearWarned(ctx context.Context, scope budget.ScopeKind, id string) error

	// CreateAction journals an action as pending before it runs.
	CreateAction(ctx context.Context, a Action) (Action, error)
	// UpdateAction records an attempt's outcome: status, attempts, last error.
	UpdateAction(ctx context.Context, a Action) error
	// Actions returns actions with the given status ("" = all), oldest first.
	Actions(ctx context.Context, status ActionStatus) ([]Action, error)

	// PutMemo, Memo and DeleteMemo keep small values per (bottle, key), such
	// as the network endpoints and routes file a cutoff must restore.
	PutMemo(ctx context.Context, bottle, key string, value []byte) error
	Memo(ctx context.Context, bottle, key string) ([]byte, error)
	DeleteMemo(ctx context.Context, bottle, key string) error

	// AppendAudit appends an entry to the hash-chained audit log and returns
	// it with its sequence number, time and hashes filled in.
	AppendAudit(ctx context.Context, e AuditEntry) (AuditEntry, error)
	// Audit returns audit entries, newest first; bottle "" means all.
	Audit(ctx context.Context, bottle string, limit int) ([]AuditEntry, error)
	// VerifyAudit checks the whole chain and names the first broken entry.
	VerifyAudit(ctx context.Context) error

	// Close releases the database.
	Close() error
}

// AppendResult is the outcome of one appended report.
type AppendResult struct {
	Duplicate bool
}

// Total is the usage aggregate of one (bottle, agent, provider).
type Total struct {
	Bottle   string
	Agent    string
	Provider string
	Usage    budget.Usage
	Counted  int64 // sum of the reports' weighted counts
	Reports  int64
	LastTS   time.Time
	// Clamped names the counts the ledger held out of range (REAL or
	// negative), with their stored values, which Totals clamped.
	Clamped []string
}

// ScopeBudget is a runtime budget at one scope.
type ScopeBudget struct {
	Scope  budget.ScopeKind
	ID     string
	Limits budget.Limits
}

// ActionStatus is where an enforcement action stands in the journal.
type ActionStatus string

// The journal statuses.
const (
	StatusPending ActionStatus = "pending"
	StatusDone    ActionStatus = "done"
	StatusFailed  ActionStatus = "failed"
)

// Action is one journaled enforcement or operator action.
type Action struct {
	ID        int64
	Bottle    string
	Kind      budget.ActionKind
	Reason    string
	Operator  bool // requested by an operator rather than a budget crossing
	Status    ActionStatus
	Attempts  int
	LastError string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// AuditEntry is one line of the append-only audit log. Hash is the SHA-256
// of this entry's content and PrevHash, so editing any entry breaks the chain
// from there on.
type AuditEntry struct {
	Seq      int64
	TS       time.Time
	Kind     string // usage_crossed, warn, action_pending, action_done, action_failed, operator, budget, settings…
	Bottle   string
	Detail   string
	PrevHash string
	Hash     string
}
