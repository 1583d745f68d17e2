// Package api holds the wire types of the daemon's socket API (SPEC section
// 5), shared by the server in controller and the client in client, so the
// two cannot drift apart.
package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
)

// Version is the API version prefix every route lives under.
const Version = "/v1"

// Body size caps: a report is small; a batch holds many; a raw provider
// body (a whole SSE stream) can be large.
const (
	MaxRequestBytes = 1 << 20  // everything but usage ingest
	MaxIngestBytes  = 32 << 20 // POST /v1/usage, single, batch or raw
)

// MaxIngestReports is how many reports one POST /v1/usage may carry by
// default (413 past it): enough for any sidecar's backlog, small enough
// that one request cannot hold the daemon's memory or its gate. Send more
// as several requests.
const MaxIngestReports = 10_000

// Error is every error reply: {"error": "<message>"}.
type Error struct {
	Error string `json:"error"`
}

// Report is one usage report on the wire: the ledger's report, or instead of
// the token fields a raw provider response body and its format.
type Report struct {
	budget.Report
	// Raw is the provider's response body: a JSON value, or a JSON string
	// holding the body text (SSE streams).
	Raw    json.RawMessage `json:"raw,omitempty"`
	Format string          `json:"format,omitempty"`
	// Complete shadows the ledger field so that a report which leaves it
	// out counts as complete; only a stream cut short says false.
	Complete *bool `json:"complete,omitempty"`
	// Allowance names the allowance (SPEC section 11) whose spending this
	// report settles; unknown or expired ids settle nothing.
	Allowance string `json:"allowance,omitempty"`
}

// IngestReply answers POST /v1/usage once every report is committed.
// Accepted counts reports stored now; Duplicates counts reports whose id was
// already in the ledger (acknowledged, counted once, earlier).
type IngestReply struct {
	Accepted   int              `json:"accepted"`
	Duplicates int              `json:"duplicates"`
	Verdicts   []budget.Verdict `json:"verdicts"`
}

// BottleRequest registers or updates a bottle (PUT /v1/bottles/{slug}).
// A provider's limits are a number of tokens, a string ("1M", "5M/day"),
// or an array of them, one limit per window (budget.LimitSet).
type BottleRequest struct {
	Agent        string                   `json:"agent,omitempty"`
	Name         string                   `json:"name,omitempty"`
	Parent       string                   `json:"parent,omitempty"`
	Budget       budget.Limits            `json:"budget,omitempty"`
	AgentBudgets map[string]budget.Limits `json:"agent_budgets,omitempty"`
	Shutdown     string                   `json:"shutdown,omitempty"`
	// Rate is the bottle's own rate guards (SPEC section 12), per
	// provider, written as settings write them: "300k/min".
	Rate       map[string]string `json:"rate,omitempty"`
	Containers []string          `json:"containers,omitempty"`
}

// Bottle is a bottle as the API shows it: its registration, its usage per
// provider (the whole subtree, counted tokens) and a verdict per provider
// for its own agent, which names the governing scope and effective limit.
type Bottle struct {
	budget.Bottle
	Usage map[string]int64 `json:"usage"`
	// Held is what allowances hold per provider over the same subtree:
	// granted to meters and not yet settled by reports (SPEC section 11).
	Held     map[string]int64 `json:"held"`
	Verdicts []budget.Verdict `json:"verdicts"`
	// RateGuards are the rate guards in force over the bottle (its own,
	// else the settings'), with what its own reports brought over the
	// last minute.
	RateGuards []RateGuard `json:"rate_guards,omitempty"`
	// Limits are every limit governing the bottle's own agent, per
	// provider, each with its window's usage and reset (SPEC section 12).
	Limits []budget.LimitUse `json:"limits"`
}

// RateGuard is one provider's rate guard over a bottle: at most Guard
// tokens a minute; LastMinute is what the bottle reported in the last 60
// seconds (since the daemon started or the bottle was last restored, if
// that is later).
type RateGuard struct {
	Provider   string `json:"provider"`
	Guard      int64  `json:"guard"`
	LastMinute int64  `json:"last_minute"`
}

// UnmarshalJSON reads a registration strictly, as the daemon decodes
// every body (unknown fields refused), naming the field of a bad limit:
// "budget: claude: …", "agent_budgets.reviewer: claude: …".
func (r *BottleRequest) UnmarshalJSON(b []byte) error {
	type plain BottleRequest
	var raw struct {
		plain
		Budget       json.RawMessage            `json:"budget,omitempty"`
		AgentBudgets map[string]json.RawMessage `json:"agent_budgets,omitempty"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return err
	}
	*r = BottleRequest(raw.plain)
	if len(raw.Budget) > 0 {
		if err := json.Unmarshal(raw.Budget, &r.Budget); err != nil {
			return fmt.Errorf("budget: %w", err)
		}
	}
	for agent, l := range raw.AgentBudgets {
		var limits budget.Limits
		if err := json.Unmarshal(l, &limits); err != nil {
			return fmt.Errorf("agent_budgets.%s: %w", agent, err)
		}
		if r.AgentBudgets == nil {
			r.AgentBudgets = map[string]budget.Limits{}
		}
		r.AgentBudgets[agent] = limits
	}
	return nil
}

// ActionRequest asks for an operator action on a bottle.
type ActionRequest struct {
	Action string `json:"action"`
	Reason string `json:"reason,omitempty"`
}

// Action is one journaled enforcement or operator action.
type Action struct {
	ID        int64     `json:"id"`
	Bottle    string    `json:"bottle"`
	Kind      string    `json:"action"`
	Reason    string    `json:"reason"`
	Operator  bool      `json:"operator"`
	Status    string    `json:"status"`
	Attempts  int       `json:"attempts"`
	LastError string    `json:"last_error,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Budget is one scope's limits (GET, PUT and DELETE
// /v1/budgets/{scope}/{id}). Limits are those in force, per provider: a
// number for one lifetime limit (as before windows), a string for one
// windowed limit ("5000000/day"), an array for several. Sources lists
// every limit at the scope with its source, the overridden ones too;
// Removed, in a DELETE's reply, the limits it removed.
type Budget struct {
	Scope   string        `json:"scope"`
	ID      string        `json:"id"`
	Limits  budget.Limits `json:"limits"`
	Sources []BudgetLimit `json:"sources"`
	Removed []BudgetLimit `json:"removed,omitempty"`
}

// BudgetLimit is one limit at one scope (GET /v1/budgets lists every
// one): its provider, tokens and window (life, day, week, month, or a
// rolling span such as 5h), where it comes from (source: settings,
// runtime, registration, label; origin: where to change it, in words) and
// whether a limit of a higher-ranking source at the same scope overrides
// it. Runtime beats registration and labels, which beat settings.
type BudgetLimit struct {
	Scope      string `json:"scope"`
	ID         string `json:"id"`
	Provider   string `json:"provider"`
	Limit      int64  `json:"limit"`
	Window     string `json:"window"`
	Source     string `json:"source"`
	Origin     string `json:"origin"`
	Overridden bool   `json:"overridden"`
}

// BudgetLimits flattens limit sources into one BudgetLimit per limit (a
// set of several windows is several lines).
func BudgetLimits(sources []budget.LimitSource) []BudgetLimit {
	out := make([]BudgetLimit, 0, len(sources))
	for _, s := range sources {
		for _, l := range s.Limits {
			out = append(out, BudgetLimit{Scope: string(s.Kind), ID: s.ID, Provider: s.Provider, Limit: l.Tokens,
				Window: l.Window.String(), Source: string(s.Source), Origin: s.Origin, Overridden: s.Overridden})
		}
	}
	return out
}

// AuditEntry is one line of the hash-chained audit log (GET /v1/audit): the
// ledger's record as it is, with its JSON names.
type AuditEntry = budget.AuditEntry

// AuditVerify answers GET /v1/audit/verify.
type AuditVerify struct {
	OK      bool   `json:"ok"`
	Entries int64  `json:"entries"`
	Error   string `json:"error,omitempty"`
}

// Status answers GET /v1/status.
type Status struct {
	Version       string    `json:"version"`
	PID           int       `json:"pid"`
	StartedAt     time.Time `json:"started_at"`
	UptimeSeconds float64   `json:"uptime_seconds"`
	Store         string    `json:"store"`
	// StoreReadOnly is true when the ledger takes no writes (opened
	// read-only, or the disk refused the last write); StoreError says why.
	StoreReadOnly bool   `json:"store_read_only"`
	StoreError    string `json:"store_error,omitempty"`
	Socket        string `json:"socket"`
	Precedence    string `json:"precedence"`
	Bottles       int    `json:"bottles"`
	// BottleStates counts the bottles in each state (active, paused, …).
	BottleStates   map[budget.State]int `json:"bottle_states"`
	Reports        int64                `json:"reports"`
	PendingActions int                  `json:"pending_actions"`
	// Allowances are the allowances live now; Held is what they hold
	// host-wide per provider (SPEC section 11).
	Allowances int              `json:"allowances"`
	Held       map[string]int64 `json:"held"`
	Global     []budget.Verdict `json:"global"`
	// Limits are every global limit, each with its window's host-wide
	// usage and reset; Global gives the governing one per provider.
	Limits []budget.LimitUse `json:"limits"`
	Docker DockerStatus      `json:"docker"`
	// Fleet is the fleet this host belongs to (SPEC section 14); absent
	// for a host alone.
	Fleet *FleetStatus `json:"fleet,omitempty"`
}

// FleetStatus is the fleet as this daemon sees it: every host Postgres
// knows, with its shipped usage, its lease and its shipping lag, and this
// host's view of each provider's fleet budget.
type FleetStatus struct {
	// Host is this daemon's name in the fleet.
	Host string `json:"host"`
	// Reachable is whether Postgres answered the daemon's last call;
	// Error says why not.
	Reachable bool   `json:"reachable"`
	Error     string `json:"error,omitempty"`
	// FailOpen is fleet.fail_open: while Postgres is unreachable, the
	// local scopes alone decide.
	FailOpen bool `json:"fail_open"`
	// ReadAt is when the hosts were last read from Postgres.
	ReadAt time.Time   `json:"read_at,omitzero"`
	Hosts  []FleetHost `json:"hosts"`
	// Budgets is this host's view of each provider's fleet budget: the
	// governing limit, the fleet's usage as known, this host's lease and
	// what it may still spend.
	Budgets []budget.FleetState `json:"budgets"`
}

// FleetHost is one host of the fleet as Postgres knows it.
type FleetHost struct {
	Host string `json:"host"`
	// Used is the host's lifetime usage shipped to Postgres, per
	// provider.
	Used map[string]int64 `json:"used"`
	// Lease is what the host's lease of each provider still reserves of
	// the fleet: its ceiling less what it has shipped (an expired lease
	// reserves it until its host settles it).
	Lease map[string]int64 `json:"lease"`
	// Expired lists the providers whose lease expired without being
	// returned or renewed.
	Expired []string `json:"expired,omitempty"`
	// LagMS is the age of the host's oldest report not yet shipped, as
	// it last said (0: caught up).
	LagMS    int64     `json:"lag_ms"`
	LastSeen time.Time `json:"last_seen"`
}

// DockerStatus says whether the daemon can reach the Docker engine.
type DockerStatus struct {
	Enabled    bool   `json:"enabled"`
	Reachable  bool   `json:"reachable"`
	APIVersion string `json:"api_version,omitempty"`
	Error      string `json:"error,omitempty"`
	// DaemonID is the daemon's id, when it has one: it takes only the
	// containers labelled bot-bottle.daemon=<id>.
	DaemonID string `json:"daemon_id,omitempty"`
}

// Event is one server-sent event on GET /v1/events: its type names what
// changed (usage, state, action, budget, warn, crossed, bottle, settings).
type Event struct {
	Type   string          `json:"type"`
	Bottle string          `json:"bottle,omitempty"`
	TS     time.Time       `json:"ts"`
	Data   json.RawMessage `json:"data,omitempty"`
}

// AllowanceRequest asks the daemon for tokens to spend (POST
// /v1/allowances, SPEC section 11). Without ID it opens a new allowance for
// (Bottle, Agent, Provider); with ID it adds Tokens to that allowance and
// renews it (Tokens 0 only renews). Tokens are counted tokens, the units of
// limits and usage (raw tokens times the provider's weight).
type AllowanceRequest struct {
	ID       string `json:"id,omitempty"`
	Bottle   string `json:"bottle"`
	Agent    string `json:"agent,omitempty"`
	Provider string `json:"provider"`
	Tokens   int64  `json:"tokens"`
}

// Allowance answers POST /v1/allowances. Granted is what this call added
// (it may be less than asked, or 0: Verdict.Reason says why); Held is what
// the allowance holds now, granted and not yet settled by reports. It
// expires at ExpiresAt unless its holder renews it; Weight is the
// provider's weight, counted tokens per raw token, for holders that count
// raw tokens.
type Allowance struct {
	ID        string         `json:"id"`
	Bottle    string         `json:"bottle"`
	Agent     string         `json:"agent,omitempty"`
	Provider  string         `json:"provider"`
	Granted   int64          `json:"granted"`
	Held      int64          `json:"held"`
	Weight    float64        `json:"weight"`
	ExpiresAt time.Time      `json:"expires_at"`
	Verdict   budget.Verdict `json:"verdict"`
}
