package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
)

// Core is the daemon without its transport: it owns the book, the settings
// and the lock that guards them, and runs the whole budget state machine
// over the ledger and the enforcer — reports ingested (after their commit)
// are recorded, their crossings claimed, journaled and handed to the
// enforcer, whose outcome it records; bottles are registered, limits set,
// operator actions started, the ledger reconciled at start, verdicts
// answered. The Server decodes requests, calls it and encodes its answers;
// tests drive it directly over a fake ledger.
//
// Locking: mu guards book, settings and unstored, and is held only for
// memory work, never across a ledger call. saveMu orders every write of a
// bottle's row: whoever changes a bottle in the book saves it afterwards
// under saveMu, reading the book's copy there, so the ledger never keeps
// an older state than memory. A read-modify-write of a registration holds
// saveMu from its read to its write.
type Core struct {
	ledger          Ledger
	ingester        Ingester
	enforcer        Enforcer
	notifier        Notifier
	containerBottle func(ctx context.Context, containerID string) (string, bool)
	log             *slog.Logger
	now             func() time.Time
	afterFunc       func(d time.Duration, f func()) (stop func() bool)

	mu       sync.Mutex
	book     *budget.Book
	settings *budget.Settings
	// unstored are implicit bottles in the book whose rows no commit has
	// stored yet: every report naming one carries its row into the
	// report's transaction until one commits.
	unstored map[string]bool
	// allow is the table of live allowances (allowances.go).
	allow allowances
	// rates are the bottles' rate windows and the guard's lifts (rate.go).
	rates rateGuards
	// fleet is this host's side of the fleet leases (fleet.go); fleetOn
	// whether the daemon is a fleet member at all (Config.Fleet).
	fleet   fleetLeases
	fleetOn bool

	saveMu sync.Mutex
	// ingestGate is held shared by every ingest from before its commit to
	// after its count, and exclusively while a window's usage is read from
	// the ledger into the book (windows.go), so that no report is in both
	// or in neither.
	ingestGate sync.RWMutex
	// resets is the timer at the next window boundary.
	resets *resetTimer

	hub     *hub
	metrics *metrics
}

// NewCore builds the core from cfg (its Ledger, Ingester, Settings,
// Enforcer, ContainerBottle, Log and Now; the transport fields are the
// Server's) and loads its book from the ledger: bottles, runtime budgets
// and usage totals. Pending actions are handed to the enforcer again and
// budgets exhausted before a crash are acted on.
func NewCore(ctx context.Context, cfg Config) (*Core, error) {
	c := newCore(cfg)
	if err := c.load(ctx); err != nil {
		return nil, err
	}
	if err := c.resume(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// newCore is the core with an empty book, before load.
func newCore(cfg Config) *Core {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Settings == nil {
		cfg.Settings = budget.DefaultSettings()
	}
	if cfg.AfterFunc == nil {
		cfg.AfterFunc = func(d time.Duration, f func()) func() bool { return time.AfterFunc(d, f).Stop }
	}
	c := &Core{fleetOn: cfg.Fleet != nil, ledger: cfg.Ledger, ingester: cfg.Ingester, enforcer: cfg.Enforcer, notifier: cfg.Notifier, containerBottle: cfg.ContainerBottle,
		log: cfg.Log, now: cfg.Now, afterFunc: cfg.AfterFunc, settings: cfg.Settings, unstored: map[string]bool{},
		allow: newAllowances(), rates: newRateGuards(), fleet: newFleetLeases(), hub: newHub(), resets: newResetTimer()}
	c.metrics = newMetrics(c, cfg)
	return c
}

// load rebuilds the book from the ledger's rows.
func (c *Core) load(ctx context.Context) error {
	bottles, err := c.ledger.Bottles(ctx)
	if err != nil {
		return fmt.Errorf("load bottles: %w", err)
	}
	budgets, err := c.ledger.Budgets(ctx)
	if err != nil {
		return fmt.Errorf("load budgets: %w", err)
	}
	totals, err := c.ledger.Totals(ctx)
	if err != nil {
		return fmt.Errorf("load usage: %w", err)
	}
	c.warnClamped(totals)
	book, err := budget.Rebuild(c.bookSettings(c.settings), bottles, budgets, totals)
	if err != nil {
		return fmt.Errorf("load %w", err)
	}
	book.Advance(c.now())
	c.book = book
	return c.loadWindows(ctx, book.Windows(), c.settings)
}

// warnClamped says which aggregates the ledger held out of range. The
// daemon starts anyway: refusing would need a hand edit of the ledger, and
// the clamped count is the most the row can mean.
func (c *Core) warnClamped(totals []budget.Total) {
	for _, t := range totals {
		if len(t.Clamped) > 0 {
			c.log.Warn("ledger totals out of range, read clamped (the next report for this key rewrites the row)",
				"bottle", t.Bottle, "agent", t.Agent, "provider", t.Provider, "values", strings.Join(t.Clamped, " "))
		}
	}
}

// SetSettings puts reloaded settings in force, and acts on what they
// change: a limit lowered below what is used is a crossing, a limit raised
// above it restores what its budget cut off. Windows the new settings
// bring (or all calendar windows, when the timezone moved) have their
// usage read from the ledger in the same step. If that read fails, the
// old settings stay in force and the error is returned. It answers with
// what the reload changed among the limits in force (a settings limit
// that a runtime limit, a registration or a label overrides changes
// nothing there).
func (c *Core) SetSettings(st *budget.Settings) (Reload, error) {
	ctx := context.Background()
	c.ingestGate.Lock()
	c.mu.Lock()
	need := c.book.NewWindowsFor(st)
	c.mu.Unlock()
	loads, err := c.readWindows(ctx, need, st)
	if err != nil {
		c.ingestGate.Unlock()
		return Reload{}, fmt.Errorf("settings not applied: %w", err)
	}
	c.mu.Lock()
	all := c.book.Slugs()
	exempt := c.book.OperatorExempt(all)
	before := c.book.LimitSources()
	c.settings = st
	c.book.SetSettings(c.bookSettings(st))
	c.book.LoadWindows(loads)
	reload := reloadOf(before, c.book.LimitSources())
	c.mu.Unlock()
	c.ingestGate.Unlock()
	c.scheduleResets()
	if c.notifier != nil {
		c.notifier.SetSinks(st.Notify)
	}
	c.publish("settings", "", nil)
	if err := c.audit(ctx, "settings", "", "settings reloaded: "+reload.String()); err != nil {
		c.log.Error("audit settings reload", "err", err)
	}
	c.settle(ctx, all, exempt)
	return reload, nil
}

// Operators are the settings' operators in force.
func (c *Core) Operators() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.settings.Operators
}

// ProviderForHost is the provider the settings attribute to an upstream
// host, or "".
func (c *Core) ProviderForHost(host string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.settings.ProviderForHost(host)
}

// Weigh resolves a report's agent and counted tokens, refusing a report
// whose count would take the provider's host-wide total (the largest
// counter it adds to) past budget.MaxCounted.
func (c *Core) Weigh(rep *budget.Report) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if b, ok := c.book.Bottle(rep.Bottle); ok {
		rep.Agent = b.AgentName(rep.Agent)
	}
	rep.Counted = rep.Usage.Counted(c.settings.WeightsFor(rep.Provider))
	if _, _, global := c.book.Used(rep.Bottle, rep.Agent, rep.Provider); rep.Counted > budget.MaxCounted-global {
		return fmt.Errorf("%w: %s: weighted, this report counts %d tokens, which would take the %s total of %d past the most a counter holds (%d)",
			budget.ErrInvalid, budget.CountedFields, rep.Counted, rep.Provider, global, budget.MaxCounted)
	}
	return nil
}

// Verdict is the gate's answer for a request of estimate tokens, from
// memory, never the disk.
func (c *Core) Verdict(bottle, agent, provider string, estimate int64) budget.Verdict {
	started := time.Now() // the latency's clock, not the core's
	now := c.now()
	c.mu.Lock()
	c.sweepLocked(now)
	v := c.book.Verdict(bottle, agent, provider, estimate)
	c.mu.Unlock()
	c.metrics.verdict(v.Allowed, started)
	return v
}

// verdictsFor is one verdict per (bottle, agent, provider) in reports.
func (c *Core) verdictsFor(reports []budget.Report) []budget.Verdict {
	type key struct{ b, a, p string }
	seen := map[key]bool{}
	var keys []key
	for _, r := range reports {
		k := key{r.Bottle, r.Agent, r.Provider}
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	out := make([]budget.Verdict, 0, len(keys))
	for chunk := range slices.Chunk(keys, lockChunk) {
		c.mu.Lock()
		c.sweepLocked(c.now())
		for _, k := range chunk {
			out = append(out, c.book.Verdict(k.b, k.a, k.p, 0))
		}
		c.mu.Unlock()
	}
	return out
}

// BottleOfContainer finds the bottle a container belongs to: first among
// the containers bottles registered with, then through ContainerBottle.
func (c *Core) BottleOfContainer(ctx context.Context, id string) (string, bool) {
	c.mu.Lock()
	slug, ok := c.book.BottleOfContainer(id)
	c.mu.Unlock()
	if !ok && c.containerBottle != nil {
		return c.containerBottle(ctx, id)
	}
	return slug, ok
}

// Bottles is every bottle with its usage and verdicts.
func (c *Core) Bottles() []api.Bottle {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sweepLocked(c.now())
	bottles, providers := c.book.Bottles(), c.book.Providers()
	out := make([]api.Bottle, 0, len(bottles))
	for _, b := range bottles {
		out = append(out, c.viewLocked(b, providers))
	}
	return out
}

// Bottle is a bottle with its usage and verdicts, or ErrNotFound.
func (c *Core) Bottle(slug string) (api.Bottle, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sweepLocked(c.now())
	b, ok := c.book.Bottle(slug)
	if !ok {
		return api.Bottle{}, fmt.Errorf("%w: bottle %q", budget.ErrNotFound, slug)
	}
	return c.viewLocked(b, c.book.Providers()), nil
}

// viewLocked builds a bottle's view over the providers given (the book's,
// computed once per request: it walks every bottle). c.mu must be held.
func (c *Core) viewLocked(b budget.Bottle, providers []string) api.Bottle {
	v := api.Bottle{Bottle: b, Usage: map[string]int64{}, Held: map[string]int64{}, RateGuards: c.rateViewLocked(b.Slug, c.now()),
		Limits: []budget.LimitUse{}}
	for _, p := range providers {
		_, sub, _ := c.book.Used(b.Slug, b.Agent, p)
		_, held, _ := c.book.Held(b.Slug, b.Agent, p)
		verdict := c.book.Verdict(b.Slug, b.Agent, p, 0)
		if sub == 0 && held == 0 && verdict.Unlimited {
			continue
		}
		v.Usage[p], v.Held[p] = sub, held
		v.Verdicts = append(v.Verdicts, verdict)
		v.Limits = append(v.Limits, c.book.LimitUses(b.Slug, b.Agent, p)...)
	}
	return v
}

func (c *Core) bottleCopy(slug string) (budget.Bottle, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.book.Bottle(slug)
	if !ok {
		return b, fmt.Errorf("%w: bottle %q", budget.ErrNotFound, slug)
	}
	return b, nil
}

// Status fills what the status shows of the core: whether the ledger
// takes writes, the precedence, the bottles known, the global verdict of
// every provider, the reports counted and the actions pending.
func (c *Core) Status(ctx context.Context, st *api.Status) error {
	if err := c.ledger.Writable(ctx); err != nil {
		st.StoreReadOnly, st.StoreError = true, err.Error()
	}
	c.mu.Lock()
	c.sweepLocked(c.now())
	st.Precedence = string(c.settings.Precedence)
	bottles := c.book.Bottles()
	st.Bottles, st.BottleStates = len(bottles), map[budget.State]int{}
	for _, b := range bottles {
		st.BottleStates[b.State]++
	}
	st.Allowances, st.Held = c.allowanceTotalsLocked()
	st.Limits = []budget.LimitUse{}
	for _, p := range c.book.Providers() {
		st.Global = append(st.Global, c.globalVerdict(p))
		st.Limits = append(st.Limits, c.book.GlobalLimitUses(p)...)
	}
	c.mu.Unlock()
	totals, err := c.ledger.Totals(ctx)
	if err != nil {
		return err
	}
	for _, t := range totals {
		st.Reports = budget.SatAdd(st.Reports, t.Reports)
	}
	pending, err := c.ledger.Actions(ctx, budget.StatusPending)
	if err != nil {
		return err
	}
	st.PendingActions = len(pending)
	return nil
}

// Actions are the journaled actions with the given status ("" = all),
// oldest first.
func (c *Core) Actions(ctx context.Context, status budget.ActionStatus) ([]api.Action, error) {
	acts, err := c.ledger.Actions(ctx, status)
	if err != nil {
		return nil, err
	}
	out := make([]api.Action, 0, len(acts))
	for _, a := range acts {
		out = append(out, apiAction(a))
	}
	return out, nil
}

// Action is one journaled action, as the API shows it.
func (c *Core) Action(ctx context.Context, id int64) (api.Action, error) {
	a, err := c.ledger.Action(ctx, id)
	if err != nil {
		return api.Action{}, err
	}
	return apiAction(a), nil
}

// Audit is the audit log, newest first; bottle "" means all.
func (c *Core) Audit(ctx context.Context, bottle string, limit int) ([]budget.AuditEntry, error) {
	entries, err := c.ledger.Audit(ctx, bottle, limit)
	if entries == nil && err == nil {
		entries = []budget.AuditEntry{} // an empty log is [], not null
	}
	return entries, err
}

// VerifyAudit checks the whole hash chain. A broken chain is an answer
// (OK false, naming the first broken entry), not an error; the error is
// the ledger's failing to be read.
func (c *Core) VerifyAudit(ctx context.Context) (api.AuditVerify, error) {
	if err := c.ledger.VerifyAudit(ctx); err != nil {
		var ce *budget.ChainError
		if !errors.As(err, &ce) {
			return api.AuditVerify{}, err
		}
		return api.AuditVerify{OK: false, Entries: ce.Good, Error: err.Error()}, nil
	}
	entries, err := c.ledger.Audit(ctx, "", 1)
	if err != nil {
		return api.AuditVerify{}, err
	}
	v := api.AuditVerify{OK: true}
	if len(entries) > 0 {
		v.Entries = entries[0].Seq
	}
	return v, nil
}

// globalVerdict is host-wide usage of a provider against the global
// budget. c.mu must be held.
func (c *Core) globalVerdict(provider string) budget.Verdict {
	return c.book.GlobalVerdict(provider)
}

// audit appends to the hash-chained audit log.
func (c *Core) audit(ctx context.Context, kind, bottle, detail string) error {
	_, err := c.ledger.AppendAudit(ctx, budget.AuditEntry{Kind: kind, Bottle: bottle, Detail: detail})
	if err == nil {
		c.publish("audit", bottle, map[string]string{"kind": kind, "detail": detail})
	}
	return err
}
