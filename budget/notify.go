package budget

import (
	"slices"
	"time"
)

// NoticeKind is what a notice tells (SPEC section 13): the kinds a
// notification sink may ask for in settings.
type NoticeKind string

// The notice kinds.
const (
	// NoticeWarn: a budget passed its warn threshold.
	NoticeWarn NoticeKind = "warn"
	// NoticeCrossing: a budget was exhausted; its bottles are acted on.
	NoticeCrossing NoticeKind = "crossing"
	// NoticeActionDone and NoticeActionFailed: an action finished.
	NoticeActionDone   NoticeKind = "action_done"
	NoticeActionFailed NoticeKind = "action_failed"
	// NoticeReset: a budget window ended and what it cut off is restored.
	NoticeReset NoticeKind = "reset"
	// NoticeRate: a rate guard tripped or lifted.
	NoticeRate NoticeKind = "rate"
)

// NoticeKinds are every kind, in the order settings name them.
var NoticeKinds = []NoticeKind{NoticeWarn, NoticeCrossing, NoticeActionDone, NoticeActionFailed, NoticeReset, NoticeRate}

// Notice is one thing that happened that operators are told of: logged,
// published on the events stream and sent to the notification sinks that
// want its kind. Fields that do not apply to its kind are left out of its
// JSON.
type Notice struct {
	// ID is unique per notice and the same on every retry of its
	// delivery, so that a receiver can drop a repeat.
	ID   string     `json:"id,omitempty"`
	Kind NoticeKind `json:"kind"`
	TS   time.Time  `json:"ts"`
	// Host is the daemon's host name.
	Host string `json:"host,omitempty"`
	// Bottle is the bottle the notice is about; for a crossing or a warn,
	// Bottles are the bottles the budget governs.
	Bottle  string   `json:"bottle,omitempty"`
	Bottles []string `json:"bottles,omitempty"`
	// Scope, ScopeID, Provider, Limit and Used name the budget of a warn or
	// a crossing (and the guard of a rate notice: Limit tokens a minute).
	Scope    ScopeKind `json:"scope,omitempty"`
	ScopeID  string    `json:"scope_id,omitempty"`
	Provider string    `json:"provider,omitempty"`
	Limit    int64     `json:"limit,omitempty"`
	Used     int64     `json:"used,omitempty"`
	// Action is what was or will be done (cutoff, pause, freeze, kill,
	// restore), ActionID its journal entry, Attempts how many runs it
	// took, Error why it failed.
	Action   ActionKind `json:"action,omitempty"`
	ActionID int64      `json:"action_id,omitempty"`
	Attempts int        `json:"attempts,omitempty"`
	Error    string     `json:"error,omitempty"`
	// Reason is why, in the words the audit log uses.
	Reason string `json:"reason,omitempty"`
	// Text is the whole story in one line, for a person (a chat message).
	Text string `json:"text"`
}

// NotifySink is one entry of settings' notify: list, where notices of the
// kinds it wants are delivered: a webhook (an HTTP POST) or a program run
// with the notice on its standard input.
type NotifySink struct {
	// Name is the sink's name in logs and metrics, unique among the sinks;
	// the delivery queue finds a sink by it after a reload or a restart.
	Name string
	// Events are the kinds it wants; empty means every kind.
	Events []NoticeKind
	// Webhook is the URL a notice is POSTed to; Format "slack" posts a
	// Slack-compatible {"text": …} instead of the notice itself; Secret,
	// when set, signs the body (X-Bottlecap-Signature: sha256=<HMAC>).
	Webhook string
	Format  string
	Secret  string
	// Exec is the program and its arguments, for a sink that is not a
	// webhook.
	Exec []string
	// Timeout bounds one delivery attempt.
	Timeout time.Duration
}

// The webhook formats.
const (
	FormatJSON  = "json"
	FormatSlack = "slack"
)

// DefaultNotifyTimeout is a sink's Timeout when settings do not say.
const DefaultNotifyTimeout = 10 * time.Second

// Wants reports whether the sink takes notices of kind k.
func (s NotifySink) Wants(k NoticeKind) bool {
	return len(s.Events) == 0 || slices.Contains(s.Events, k)
}

// Delivery is one notice queued in the ledger for one sink, until the sink
// takes it.
type Delivery struct {
	ID   int64      `json:"id"`
	Sink string     `json:"sink"`
	Kind NoticeKind `json:"kind"`
	// Body is the notice as JSON, written once when it was queued.
	Body      []byte    `json:"body"`
	Attempts  int       `json:"attempts"`
	LastError string    `json:"last_error,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}
