// Package controller is the daemon: the socket API of SPEC section 5 over
// the ledger (store) and the in-memory book (budget), journaling and handing
// enforcement actions to an Enforcer.
package controller

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"
)

// Ingester commits reports durably and answers only after the commit: the
// store's group-commit writer. Bottles given with the reports are inserted
// in the same transaction when the ledger does not hold them yet.
type Ingester interface {
	SubmitWith(ctx context.Context, reports []budget.Report, bottles []budget.Bottle) ([]budget.AppendResult, error)
}

// Ledger is what the daemon reads and writes in the ledger besides the
// reports the Ingester commits. The store's *DB satisfies it; unit tests
// give a fake. Its records are budget's.
type Ledger interface {
	// Bottles, Budgets and Totals are the rows New rebuilds the book from:
	// every bottle, every runtime budget, every (bottle, agent, provider)
	// usage aggregate.
	Bottles(ctx context.Context) ([]budget.Bottle, error)
	Budgets(ctx context.Context) ([]budget.ScopeBudget, error)
	Totals(ctx context.Context) ([]budget.Total, error)
	// Writable returns nil when the ledger takes writes, else why not.
	Writable(ctx context.Context) error

	// PutBottle inserts or replaces a bottle; DeleteBottle forgets one
	// and its runtime limits (its reports stay in the ledger).
	PutBottle(ctx context.Context, b budget.Bottle) error
	DeleteBottle(ctx context.Context, slug string) error
	// PutBudget sets the runtime limits of the providers in limits at a
	// scope; DeleteBudget removes those of the providers given. A
	// bottle's registration and labels are on its row (PutBottle).
	PutBudget(ctx context.Context, scope budget.ScopeKind, id string, limits budget.Limits) error
	DeleteBudget(ctx context.Context, scope budget.ScopeKind, id string, providers ...string) error

	// WindowUsage is the counted tokens per (bottle, agent, provider) of
	// the reports with since <= ts < until (until zero: no end), in
	// step-wide buckets from since: a window's usage (budget.WindowLoad).
	WindowUsage(ctx context.Context, since, until time.Time, step time.Duration) ([]budget.UsageBucket, error)

	// MarkWarned records that the warn threshold of (scope, id, provider)
	// was crossed in the window period mark names ("" for a lifetime
	// limit), and reports whether this is the first time; the mark may be
	// forgotten after until (zero: never).
	MarkWarned(ctx context.Context, scope budget.ScopeKind, id, provider, mark string, until time.Time) (first bool, err error)
	// ClearWarned forgets the warn markers of a scope (after its budget rose).
	ClearWarned(ctx context.Context, scope budget.ScopeKind, id string) error
	// ForgetWarned forgets the marks of window periods that ended by before.
	ForgetWarned(ctx context.Context, before time.Time) error

	// CreateAction journals an action as pending before it runs and
	// returns it with its ID; UpdateAction records an attempt's outcome.
	CreateAction(ctx context.Context, a budget.Action) (budget.Action, error)
	UpdateAction(ctx context.Context, a budget.Action) error
	// Actions returns actions with the given status ("" = all), oldest first.
	Actions(ctx context.Context, status budget.ActionStatus) ([]budget.Action, error)
	// Action returns one action, or an error wrapping budget.ErrNotFound.
	Action(ctx context.Context, id int64) (budget.Action, error)

	// AppendAudit appends an entry to the hash-chained audit log and returns
	// it with its sequence number, time and hashes filled in.
	AppendAudit(ctx context.Context, e budget.AuditEntry) (budget.AuditEntry, error)
	// Audit returns audit entries, newest first; bottle "" means all.
	Audit(ctx context.Context, bottle string, limit int) ([]budget.AuditEntry, error)
	// VerifyAudit checks the whole chain; a break is a *budget.ChainError.
	VerifyAudit(ctx context.Context) error
}

// Config is everything the daemon is built from.
type Config struct {
	Ledger   Ledger
	Ingester Ingester
	Settings *budget.Settings
	// Enforcer carries out actions; nil leaves journaled actions pending.
	Enforcer Enforcer
	// Notifier takes notices for the settings' notify: sinks; nil tells
	// only the log.
	Notifier Notifier
	// Collectors are more metrics /metrics serves (the notifier's).
	Collectors []prometheus.Collector
	// ContainerBottle maps a container id to its bottle for container peers
	// the book does not know (e.g. by Docker labels); nil means unknown.
	ContainerBottle func(ctx context.Context, containerID string) (string, bool)
	// RawParser normalises `raw` report bodies; nil answers them with 400.
	RawParser RawParser
	// Docker reports engine reachability for /v1/status; nil = disabled.
	Docker func(ctx context.Context) api.DockerStatus
	// Fleet is the fleet's hosts as the daemon last read them from
	// Postgres, for /v1/status and /metrics; nil for a host alone. The
	// core adds this host's view of each fleet budget.
	Fleet     func(ctx context.Context) api.FleetStatus
	Version   string
	Commit    string // the VCS commit built, for bottlecap_build_info
	StorePath string
	Socket    string
	// Limits bound connections, timeouts and ingest; zero fields take
	// DefaultLimits.
	Limits Limits
	Log    *slog.Logger
	Now    func() time.Time
	// AfterFunc calls f in its own goroutine once d has passed on the
	// clock Now reads (time.AfterFunc by default); stop cancels it and
	// reports whether it had not run yet. The core's timers (a rate
	// guard's lift, a window's reset) go through it, so a test that moves
	// Now moves them too.
	AfterFunc func(d time.Duration, f func()) (stop func() bool)
}

// Server is the running daemon: the socket API over a Core. Its handlers
// decode a request, call the core and encode the answer.
type Server struct {
	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	started time.Time

	core    *Core
	hub     *hub
	metrics *metrics
	http    *http.Server

	limits Limits
	conns  *connLimiter
	// ingestBytes bounds the ingest bodies decoded at once.
	ingestBytes *semaphore.Weighted
	ledgerLost  sync.Once // logs the loss of the ledger's files once
}

// New builds a server over a new Core (see NewCore): the book loaded from
// the ledger, pending actions handed to the enforcer again and budgets
// exhausted before a crash acted on.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	core, err := NewCore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Log, now: cfg.Now, started: cfg.Now(), core: core, hub: core.hub, metrics: core.metrics}
	s.limits = cfg.Limits.withDefaults()
	s.ingestBytes = semaphore.NewWeighted(s.limits.IngestBytesInFlight)
	s.conns = newConnLimiter(s.limits, s.log, s.metrics.refusedConns.Inc)
	s.http = s.newHTTPServer()
	return s, nil
}

// newHTTPServer bounds every phase of a connection, so that no peer can
// hold one open for free: the header, the whole request (a trickled body),
// the reply, and the idle time between requests. Handlers that legitimately
// run longer (the event stream, ingest waiting for its commit) move their
// own deadlines with http.ResponseController.
func (s *Server) newHTTPServer() *http.Server {
	return &http.Server{
		Handler:           s.routes(),
		ConnContext:       s.connContext,
		ConnState:         s.conns.connState,
		ReadHeaderTimeout: s.limits.ReadHeaderTimeout,
		ReadTimeout:       s.limits.ReadTimeout,
		WriteTimeout:      s.limits.WriteTimeout,
		IdleTimeout:       s.limits.IdleTimeout,
	}
}

// Serve answers requests on l until Shutdown, admitting each peer's
// connections only up to its cap.
func (s *Server) Serve(l net.Listener) error {
	err := s.http.Serve(limitedListener{Listener: l, lim: s.conns})
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting connections, lets in-flight requests (and the
// commits they wait on) finish until ctx ends, and closes event streams.
func (s *Server) Shutdown(ctx context.Context) error {
	s.core.Close()
	s.hub.close()
	return s.http.Shutdown(ctx)
}

// Core is the server's core, for what the daemon wires to it beside the
// socket (the fleet's lease keeper).
func (s *Server) Core() *Core { return s.core }

// SetSettings puts reloaded settings in force (see Core.SetSettings).
func (s *Server) SetSettings(st *budget.Settings) (Reload, error) { return s.core.SetSettings(st) }

// Discover registers what a container's labels say (see Core.Discover).
func (s *Server) Discover(ctx context.Context, c Container) error { return s.core.Discover(ctx, c) }

// connContext decides the peer's permissions once per connection. Only a
// peer established to be a host process can be an operator: a process in a
// container is not, even as root (sidecars run as root and must only be
// able to report and ask the gate), and neither is one whose origin could
// not be established.
func (s *Server) connContext(ctx context.Context, c net.Conn) context.Context {
	p, err := s.conns.peer(c)
	if err != nil {
		s.log.Warn("peer credentials unavailable; treating the peer as unprivileged", "err", err)
		return context.WithValue(ctx, peerKey{}, Peer{PID: -1, UID: -1, GID: -1, Unknown: "no peer credentials: " + err.Error()})
	}
	if p.Unknown != "" {
		s.log.Debug("peer origin unknown; the peer may not act nor report", "pid", p.PID, "uid", p.UID, "why", p.Unknown)
	}
	ops := s.core.Operators()
	p.Operator = p.Host && isOperator(p.UID, p.GID, ops)
	return context.WithValue(ctx, peerKey{}, p)
}
