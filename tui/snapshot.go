// Package tui is `bottlecap dash`: a Bubble Tea dashboard that reads the
// ledger read-only and sends every change through the daemon's socket.
// Everything one frame shows comes from a Snapshot that a Source loads;
// every action goes through a Daemon. Both are small interfaces so the whole
// program can be driven in tests without I/O.
package tui

import (
	"context"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
)

// Snapshot is everything one frame needs, loaded at one instant, so views
// are pure functions of it and of the UI state.
type Snapshot struct {
	// Now is when the snapshot was taken (the injected clock).
	Now time.Time
	// Providers is the host-wide usage against the global budget, sorted by
	// provider name.
	Providers []ProviderUsage
	// Rows are the bottles in parent-tree order: each parent before its
	// children, children sorted by slug.
	Rows []Row
	// Detail is the detail of the bottle the operator opened, when one is.
	Detail *Detail
	// Audit is the audit log, newest first.
	Audit []api.AuditEntry
	// DaemonUp says whether the daemon answered; without it the dashboard
	// shows the store but cannot act.
	DaemonUp bool
	// Precedence is the precedence in force, shown with the governing scope.
	Precedence budget.Precedence
	// WarnAt is the warn threshold as a fraction of a limit.
	WarnAt float64
	// Fleet is the fleet the daemon belongs to, as it says (nil for a
	// host alone, or when it cannot be asked).
	Fleet *api.FleetStatus
	// StatusRead says the daemon let the dashboard read its status, so
	// that a nil Fleet means a host alone rather than a fleet unknown.
	StatusRead bool
}

// ProviderUsage is one provider's host-wide usage and global limit.
type ProviderUsage struct {
	Provider  string
	Used      int64
	Limit     int64
	Unlimited bool
	// Held is what the daemon's allowances hold host-wide (granted to
	// meters, not yet reported): the daemon's memory, not the ledger's, so
	// 0 when the daemon cannot be asked.
	Held int64
	// Burn is tokens per minute over the burn window, host-wide.
	Burn float64
	// Window is the governing global limit's window (life, day, week,
	// month or a rolling span); ResetsAt when a calendar one resets.
	Window   string
	ResetsAt time.Time
}

// Row is one bottle as the table shows it: the usage of its tightest
// provider (the one with the highest fraction of its governing limit used).
type Row struct {
	Slug   string
	Parent string
	// Depth is the bottle's depth in the parent tree (0 for a root).
	Depth int
	Agent string
	Name  string
	// Provider is the provider the row's figures are for; Providers lists
	// every provider the bottle used or has a limit for.
	Provider  string
	Providers []string
	// Used and Limit are the governing scope's aggregate and limit, which is
	// what exhaustion compares.
	Used      int64
	Limit     int64
	Unlimited bool
	// Percent is Used/Limit×100 (0 when unlimited).
	Percent float64
	Scope   budget.Scope
	// Window is the governing limit's window; ResetsAt when a calendar
	// one resets (zero for lifetime and rolling limits).
	Window   string
	ResetsAt time.Time
	// Burn is the bottle's subtree burn rate in tokens per minute.
	Burn float64
	// ETA is the estimated time until the governing budget is exhausted at
	// the governing scope's burn rate; negative when unknown or never.
	ETA    time.Duration
	State  budget.State
	Reason string
}

// Detail is what the detail view shows of one bottle.
type Detail struct {
	Row Row
	// Breakdown is the usage per agent and provider, sorted.
	Breakdown []AgentUsage
	// Series is the bottle's counted tokens per SeriesStep, oldest first,
	// for the sparkline.
	Series     []int64
	SeriesStep time.Duration
	// Limits are every limit governing the bottle's agent, per provider,
	// with its window's usage and reset.
	Limits []budget.LimitUse
	// Reports are the bottle's most recent reports, newest first.
	Reports []budget.Report
	// Audit is the bottle's audit trail, newest first.
	Audit []api.AuditEntry
}

// AgentUsage is one (agent, provider) of a bottle with the verdict that
// governs it.
type AgentUsage struct {
	Agent    string
	Provider string
	// Own is the agent's counted tokens in this bottle.
	Own     int64
	Reports int64
	Verdict budget.Verdict
}

// Source loads snapshots. The real one reads the store read-only; detail is
// the slug whose Detail to fill ("" for none).
type Source interface {
	Load(ctx context.Context, detail string) (Snapshot, error)
}

// Daemon is the dashboard's view of the daemon: the only way it changes
// anything.
type Daemon interface {
	// Act asks the daemon to run an operator action on a bottle.
	Act(ctx context.Context, slug string, action budget.ActionKind, reason string) error
	// Probe asks whether the daemon answers now, and what it holds.
	Probe(ctx context.Context) Probe
	// Events streams the daemon's change events until ctx ends or the
	// connection drops, when the channel is closed.
	Events(ctx context.Context) (<-chan api.Event, error)
}

// Row returns the row of a slug in the snapshot.
func (s *Snapshot) Row(slug string) (Row, bool) {
	for _, r := range s.Rows {
		if r.Slug == slug {
			return r, true
		}
	}
	return Row{}, false
}

// Probe is what each refresh learns from the daemon besides the ledger:
// whether it answers and, when it lets the dashboard read its status (an
// operator), the tokens its allowances hold host-wide per provider and
// the fleet it belongs to. Which bottle holds them is not asked: that is
// a read of every bottle, too dear for each frame.
type Probe struct {
	Up bool
	// StatusRead is false when the daemon refused its status (the
	// dashboard's user is not an operator): Held and Fleet are then
	// unknown, not empty.
	StatusRead bool
	Held       map[string]int64
	Fleet      *api.FleetStatus
}
