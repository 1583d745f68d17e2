package tui

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/settings"
)

// Reader is what the dashboard reads of the ledger: the store opened
// read-only satisfies it, and nothing here can write.
type Reader interface {
	Bottles(ctx context.Context) ([]budget.Bottle, error)
	Budgets(ctx context.Context) ([]budget.ScopeBudget, error)
	Totals(ctx context.Context) ([]budget.Total, error)
	RecentReports(ctx context.Context, bottle string, limit int) ([]budget.Report, error)
	// WindowUsage is a window's usage (budget.WindowLoad), as the daemon
	// loads it.
	WindowUsage(ctx context.Context, since, until time.Time, step time.Duration) ([]budget.UsageBucket, error)
	Audit(ctx context.Context, bottle string, limit int) ([]budget.AuditEntry, error)
	Actions(ctx context.Context, status budget.ActionStatus) ([]budget.Action, error)
}

// UsageWindows answers the one query the store's aggregates cannot: counted
// tokens per (bottle, agent, provider) in step-wide buckets since a time,
// for burn rates and sparklines. The store's method backs it (the store
// opened read-only satisfies it); otherwise the Sampler derives it from
// successive Totals.
type UsageWindows interface {
	UsageBuckets(ctx context.Context, since time.Time, step time.Duration) ([]budget.UsageBucket, error)
}

// How much history the dashboard looks at.
const (
	seriesStep    = time.Minute
	seriesBuckets = 30              // sparkline: the last half hour
	burnBuckets   = 5               // burn rate: the last five minutes
	recentReports = 12              // detail view
	auditLimit    = 200             // audit view
	bottleAudit   = 20              // detail view
	loadTimeout   = 5 * time.Second // one snapshot
)

// StoreSource loads snapshots from the ledger, computing verdicts with the
// same budget.Book the daemon uses, so the dashboard and the gate agree.
type StoreSource struct {
	store    Reader
	windows  UsageWindows
	sampler  *Sampler // non-nil when windows is derived from Totals
	settings func() (*budget.Settings, error)
	now      func() time.Time

	mu   sync.Mutex
	last *budget.Settings // the last settings that parsed
}

// NewStoreSource reads r with the settings at settingsPath (re-read on each
// load; a file that fails to parse keeps the last good one, as the daemon
// does). windows may be nil: burn rates are then sampled from Totals.
func NewStoreSource(r Reader, settingsPath string, windows UsageWindows, now func() time.Time) *StoreSource {
	if now == nil {
		now = time.Now
	}
	s := &StoreSource{store: r, windows: windows, now: now,
		settings: func() (*budget.Settings, error) { return settings.Load(settingsPath) }}
	if windows == nil {
		s.sampler = NewSampler()
		s.windows = s.sampler
	}
	return s
}

// Load reads the store once and builds a snapshot.
func (s *StoreSource) Load(ctx context.Context, detail string) (Snapshot, error) {
	ctx, cancel := context.WithTimeout(ctx, loadTimeout)
	defer cancel()
	now := s.now()
	in, err := s.read(ctx, now)
	if err != nil {
		return Snapshot{}, err
	}
	snap := Build(in)
	if detail != "" {
		d, err := s.detail(ctx, &snap, in, detail)
		if err != nil {
			return Snapshot{}, err
		}
		snap.Detail = d
	}
	return snap, nil
}

// read gathers the inputs of Build. The queries are independent and the
// read-only store has a pool of connections, so they run side by side: a
// frame waits for the slowest query, not for their sum.
func (s *StoreSource) read(ctx context.Context, now time.Time) (Input, error) {
	in := Input{Now: now, Settings: s.currentSettings()}
	var audit []budget.AuditEntry
	queries := []func() error{
		func() (err error) { in.Bottles, err = s.store.Bottles(ctx); return err },
		func() (err error) { in.Budgets, err = s.store.Budgets(ctx); return err },
		func() (err error) { in.Totals, err = s.store.Totals(ctx); return err },
		func() (err error) { in.Actions, err = s.store.Actions(ctx, ""); return err },
		func() (err error) { audit, err = s.store.Audit(ctx, "", auditLimit); return err },
	}
	// The table needs only the burn window, as one bucket per key: on a
	// busy host that is a fraction of the reports the sparkline's half hour
	// holds, which only the detail view loads.
	burn := burnBuckets * seriesStep
	buckets := func() (err error) { in.Buckets, err = s.windows.UsageBuckets(ctx, now.Add(-burn), burn); return err }
	if s.sampler == nil {
		queries = append(queries, buckets)
	}
	if err := parallel(queries...); err != nil {
		return in, fmt.Errorf("load dashboard: %w", err)
	}
	if s.sampler != nil { // it derives the windows from these totals
		s.sampler.Observe(now, in.Totals)
		if err := buckets(); err != nil {
			return in, fmt.Errorf("load dashboard: %w", err)
		}
	}
	in.Audit = audit
	if err := s.readWindows(ctx, &in); err != nil {
		return in, fmt.Errorf("load dashboard: %w", err)
	}
	return in, nil
}

// readWindows reads the usage of every window the limits use, side by
// side; nothing when no limit has a window.
func (s *StoreSource) readWindows(ctx context.Context, in *Input) error {
	in.Windows = budget.WindowLoadsFor(in.Settings, in.Bottles, in.Budgets, in.Now)
	queries := make([]func() error, len(in.Windows))
	for i := range in.Windows {
		l := &in.Windows[i]
		queries[i] = func() (err error) { l.Rows, err = s.store.WindowUsage(ctx, l.Since, l.Until, l.Step); return err }
	}
	return parallel(queries...)
}

// parallel runs fns concurrently and returns their errors, joined.
func parallel(fns ...func() error) error {
	errs := make([]error, len(fns))
	var wg sync.WaitGroup
	for i, f := range fns {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = f() }()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// currentSettings re-reads settings. A file that fails to parse keeps the
// last good settings in force (the daemon does the same); it is not an
// error for the dashboard, which only displays them.
func (s *StoreSource) currentSettings() *budget.Settings {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, err := s.settings(); err == nil {
		s.last = st
	}
	if s.last == nil {
		return budget.DefaultSettings()
	}
	return s.last
}

// detail loads what the detail view shows beyond the table's figures.
func (s *StoreSource) detail(ctx context.Context, snap *Snapshot, in Input, slug string) (*Detail, error) {
	row, ok := snap.Row(slug)
	if !ok {
		return nil, nil // forgotten since it was opened; the view says so
	}
	reports, err := s.store.RecentReports(ctx, slug, recentReports)
	if err != nil {
		return nil, fmt.Errorf("load detail of %s: %w", slug, err)
	}
	audit, err := s.store.Audit(ctx, slug, bottleAudit)
	if err != nil {
		return nil, fmt.Errorf("load detail of %s: %w", slug, err)
	}
	since := in.Now.Add(-seriesBuckets * seriesStep)
	if in.Buckets, err = s.windows.UsageBuckets(ctx, since, seriesStep); err != nil {
		return nil, fmt.Errorf("load detail of %s: %w", slug, err)
	}
	d := BuildDetail(in, row)
	d.Reports, d.Audit = reports, audit
	return &d, nil
}
