package controller_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/controller"
)

// fakeLedger is controller.Ledger in memory, for unit tests of the
// controller without SQLite: rows are plain slices and maps a test seeds
// and reads back. fail, when set, is asked before every call by the
// method's name; an error it returns is the call's. hook, when set, is
// called first, outside the fake's lock, so that a test can hold a call
// where it is (to force an interleaving) without blocking the others.
type fakeLedger struct {
	mu      sync.Mutex
	bottles map[string]budget.Bottle
	budgets []budget.ScopeBudget
	totals  []budget.Total
	reports []budget.Report // committed by fakeIngester, for WindowUsage
	actions []budget.Action
	audit   []budget.AuditEntry
	warned  map[string]time.Time // scope/id/provider/mark -> until
	fail    func(method string) error
	hook    func(method string)
}

var _ controller.Ledger = (*fakeLedger)(nil)

func newFakeLedger() *fakeLedger {
	return &fakeLedger{bottles: map[string]budget.Bottle{}, warned: map[string]time.Time{}}
}

// call runs hook, takes the lock and asks fail; the caller unlocks.
func (f *fakeLedger) call(method string) error {
	if f.hook != nil {
		f.hook(method)
	}
	f.mu.Lock()
	if f.fail != nil {
		return f.fail(method)
	}
	return nil
}

func (f *fakeLedger) Bottles(context.Context) ([]budget.Bottle, error) {
	defer f.mu.Unlock()
	if err := f.call("Bottles"); err != nil {
		return nil, err
	}
	out := make([]budget.Bottle, 0, len(f.bottles))
	for _, b := range f.bottles {
		out = append(out, b)
	}
	slices.SortFunc(out, func(a, b budget.Bottle) int { return strings.Compare(a.Slug, b.Slug) })
	return out, nil
}

func (f *fakeLedger) Budgets(context.Context) ([]budget.ScopeBudget, error) {
	defer f.mu.Unlock()
	if err := f.call("Budgets"); err != nil {
		return nil, err
	}
	return slices.Clone(f.budgets), nil
}

func (f *fakeLedger) Totals(context.Context) ([]budget.Total, error) {
	defer f.mu.Unlock()
	if err := f.call("Totals"); err != nil {
		return nil, err
	}
	return slices.Clone(f.totals), nil
}

func (f *fakeLedger) Writable(context.Context) error {
	defer f.mu.Unlock()
	return f.call("Writable")
}

func (f *fakeLedger) PutBottle(_ context.Context, b budget.Bottle) error {
	defer f.mu.Unlock()
	if err := f.call("PutBottle"); err != nil {
		return err
	}
	f.bottles[b.Slug] = b
	return nil
}

func (f *fakeLedger) DeleteBottle(_ context.Context, slug string) error {
	defer f.mu.Unlock()
	if err := f.call("DeleteBottle"); err != nil {
		return err
	}
	if _, ok := f.bottles[slug]; !ok {
		return fmt.Errorf("delete bottle %s: %w", slug, budget.ErrNotFound)
	}
	delete(f.bottles, slug)
	f.budgets = slices.DeleteFunc(f.budgets, func(b budget.ScopeBudget) bool {
		return (b.Scope == budget.ScopeBottle && b.ID == slug) || (b.Scope == budget.ScopeAgent && strings.HasPrefix(b.ID, slug+"/"))
	})
	return nil
}

func (f *fakeLedger) PutBudget(_ context.Context, scope budget.ScopeKind, id string, limits budget.Limits) error {
	defer f.mu.Unlock()
	if err := f.call("PutBudget"); err != nil {
		return err
	}
	for i, b := range f.budgets {
		if b.Scope == scope && b.ID == id {
			f.budgets[i].Limits = b.Limits.Merge(limits)
			return nil
		}
	}
	f.budgets = append(f.budgets, budget.ScopeBudget{Scope: scope, ID: id, Limits: budget.Limits{}.Merge(limits)})
	return nil
}

func (f *fakeLedger) DeleteBudget(_ context.Context, scope budget.ScopeKind, id string, providers ...string) error {
	defer f.mu.Unlock()
	if err := f.call("DeleteBudget"); err != nil {
		return err
	}
	for i, b := range f.budgets {
		if b.Scope == scope && b.ID == id {
			f.budgets[i].Limits = b.Limits.Without(providers...)
		}
	}
	return nil
}

func (f *fakeLedger) MarkWarned(_ context.Context, scope budget.ScopeKind, id, provider, mark string, until time.Time) (bool, error) {
	defer f.mu.Unlock()
	if err := f.call("MarkWarned"); err != nil {
		return false, err
	}
	k := string(scope) + "/" + id + "/" + provider + "/" + mark
	_, seen := f.warned[k]
	if !seen {
		f.warned[k] = until
	}
	return !seen, nil
}

func (f *fakeLedger) ForgetWarned(_ context.Context, before time.Time) error {
	defer f.mu.Unlock()
	if err := f.call("ForgetWarned"); err != nil {
		return err
	}
	for k, until := range f.warned {
		if !until.IsZero() && !until.After(before) {
			delete(f.warned, k)
		}
	}
	return nil
}

// WindowUsage sums the committed reports as the store does: per (bottle,
// agent, provider) and step-wide bucket from since, ts in [since, until).
func (f *fakeLedger) WindowUsage(_ context.Context, since, until time.Time, step time.Duration) ([]budget.UsageBucket, error) {
	defer f.mu.Unlock()
	if err := f.call("WindowUsage"); err != nil {
		return nil, err
	}
	type key struct {
		b, a, p string
		i       int64
	}
	sums := map[key]*budget.UsageBucket{}
	var out []budget.UsageBucket
	var order []key
	for _, r := range f.reports {
		if r.TS.Before(since) || (!until.IsZero() && !r.TS.Before(until)) {
			continue
		}
		k := key{r.Bottle, r.Agent, r.Provider, int64(r.TS.Sub(since) / step)}
		if sums[k] == nil {
			sums[k] = &budget.UsageBucket{Bottle: r.Bottle, Agent: r.Agent, Provider: r.Provider, Start: since.Add(time.Duration(k.i) * step)}
			order = append(order, k)
		}
		sums[k].Counted += r.Counted
		sums[k].Reports++
	}
	for _, k := range order {
		out = append(out, *sums[k])
	}
	return out, nil
}

func (f *fakeLedger) ClearWarned(_ context.Context, scope budget.ScopeKind, id string) error {
	defer f.mu.Unlock()
	if err := f.call("ClearWarned"); err != nil {
		return err
	}
	prefix := string(scope) + "/" + id + "/"
	for k := range f.warned {
		if strings.HasPrefix(k, prefix) {
			delete(f.warned, k)
		}
	}
	return nil
}

func (f *fakeLedger) CreateAction(_ context.Context, a budget.Action) (budget.Action, error) {
	defer f.mu.Unlock()
	if err := f.call("CreateAction"); err != nil {
		return budget.Action{}, err
	}
	a.ID, a.Status = int64(len(f.actions)+1), budget.StatusPending
	f.actions = append(f.actions, a)
	return a, nil
}

func (f *fakeLedger) UpdateAction(_ context.Context, a budget.Action) error {
	defer f.mu.Unlock()
	if err := f.call("UpdateAction"); err != nil {
		return err
	}
	if a.ID < 1 || int(a.ID) > len(f.actions) {
		return fmt.Errorf("update action %d: %w", a.ID, budget.ErrNotFound)
	}
	f.actions[a.ID-1] = a
	return nil
}

func (f *fakeLedger) Action(_ context.Context, id int64) (budget.Action, error) {
	defer f.mu.Unlock()
	if err := f.call("Action"); err != nil {
		return budget.Action{}, err
	}
	if id < 1 || int(id) > len(f.actions) {
		return budget.Action{}, fmt.Errorf("action %d: %w", id, budget.ErrNotFound)
	}
	return f.actions[id-1], nil
}

func (f *fakeLedger) Actions(_ context.Context, status budget.ActionStatus) ([]budget.Action, error) {
	defer f.mu.Unlock()
	if err := f.call("Actions"); err != nil {
		return nil, err
	}
	var out []budget.Action
	for _, a := range f.actions {
		if status == "" || a.Status == status {
			out = append(out, a)
		}
	}
	return out, nil
}

func (f *fakeLedger) AppendAudit(_ context.Context, e budget.AuditEntry) (budget.AuditEntry, error) {
	defer f.mu.Unlock()
	if err := f.call("AppendAudit"); err != nil {
		return budget.AuditEntry{}, err
	}
	e.Seq = int64(len(f.audit) + 1)
	f.audit = append(f.audit, e)
	return e, nil
}

// Audit returns the entries newest first, as the store does.
func (f *fakeLedger) Audit(_ context.Context, bottle string, limit int) ([]budget.AuditEntry, error) {
	defer f.mu.Unlock()
	if err := f.call("Audit"); err != nil {
		return nil, err
	}
	var out []budget.AuditEntry
	for i := len(f.audit) - 1; i >= 0 && (limit <= 0 || len(out) < limit); i-- {
		if bottle == "" || f.audit[i].Bottle == bottle {
			out = append(out, f.audit[i])
		}
	}
	return out, nil
}

// VerifyAudit holds no hashes: the chain is the store's to check.
func (f *fakeLedger) VerifyAudit(context.Context) error {
	defer f.mu.Unlock()
	return f.call("VerifyAudit")
}

// snapshot copies what a test reads back after the server wrote.
func (f *fakeLedger) snapshot() (bottles map[string]budget.Bottle, actions []budget.Action, audit []budget.AuditEntry) {
	f.mu.Lock()
	defer f.mu.Unlock()
	bottles = make(map[string]budget.Bottle, len(f.bottles))
	for k, v := range f.bottles {
		bottles[k] = v
	}
	return bottles, slices.Clone(f.actions), slices.Clone(f.audit)
}

// fakeIngester commits reports to a fakeLedger: a report id it has seen
// is a duplicate, and the rows of the bottles given are inserted when the
// ledger does not hold them yet, as the store's writer does.
type fakeIngester struct {
	f    *fakeLedger
	mu   sync.Mutex
	seen map[string]bool
}

var _ controller.Ingester = (*fakeIngester)(nil)

func (i *fakeIngester) SubmitWith(_ context.Context, reports []budget.Report, bottles []budget.Bottle) ([]budget.AppendResult, error) {
	defer i.f.mu.Unlock()
	if err := i.f.call("SubmitWith"); err != nil {
		return nil, err
	}
	for _, b := range bottles {
		if _, ok := i.f.bottles[b.Slug]; !ok {
			i.f.bottles[b.Slug] = b
		}
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.seen == nil {
		i.seen = map[string]bool{}
	}
	out := make([]budget.AppendResult, len(reports))
	for n, r := range reports {
		out[n].Duplicate = i.seen[r.ID]
		i.seen[r.ID] = true
		if !out[n].Duplicate {
			i.f.reports = append(i.f.reports, r)
		}
	}
	return out, nil
}
