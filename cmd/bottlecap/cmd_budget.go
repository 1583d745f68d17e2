package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
)

// budgetUsage lists the budget subcommands.
const budgetUsage = `usage: bottlecap budget set SCOPE[/ID] provider=N...   e.g. budget set global claude=5M
                                                        budget set bottle/dev-1 claude=1M codex=500k
                                                        budget set agent/dev-1/reviewer claude=200k
       bottlecap budget get|ls [SCOPE[/ID]] [--json]     every limit with its source, in force or overridden
       bottlecap budget rm SCOPE[/ID] [PROVIDER...]      e.g. budget rm bottle/dev-1 claude
Runtime limits (budget set) beat registration and labels, which beat settings.yml.
Every subcommand takes --socket PATH.`

// runBudget dispatches `bottlecap budget set|get|ls|rm`.
func (m *Main) runBudget(ctx context.Context, args []string) error {
	switch {
	case len(args) > 0 && args[0] == "set":
		return m.runBudgetSet(ctx, args[1:])
	case len(args) > 0 && (args[0] == "get" || args[0] == "ls"):
		return m.runBudgetGet(ctx, args[0], args[1:])
	case len(args) > 0 && args[0] == "rm":
		return m.runBudgetRm(ctx, args[1:])
	case len(args) > 0:
		fmt.Fprintf(m.Stderr, "bottlecap budget: unknown subcommand %q\n", args[0])
	}
	fmt.Fprintln(m.Stderr, budgetUsage)
	return errUsage
}

// parseScope reads a scope as the routes name it: global (or global/-),
// bottle/<slug>, agent/<slug>/<agent>.
func parseScope(s string) (budget.Scope, error) {
	kind, id, _ := strings.Cut(s, "/")
	k, err := budget.ParseScopeKind(kind)
	if err != nil {
		return budget.Scope{}, err
	}
	parts := strings.Split(id, "/")
	switch {
	case k == budget.ScopeGlobal && (id == "" || id == "-"):
		return budget.Scope{Kind: k, ID: "-"}, nil
	case k == budget.ScopeBottle && len(parts) == 1 && budget.ValidateSlug("bottle", id) == nil:
		return budget.Scope{Kind: k, ID: id}, nil
	case k == budget.ScopeAgent && len(parts) == 2 && budget.ValidateSlug("bottle", parts[0]) == nil &&
		budget.ValidateName("agent", parts[1]) == nil:
		return budget.Scope{Kind: k, ID: id}, nil
	}
	return budget.Scope{}, fmt.Errorf("scope %q: want global, bottle/SLUG or agent/SLUG/AGENT", s)
}

// runBudgetSet implements `bottlecap budget set SCOPE[/ID] provider=N…`.
func (m *Main) runBudgetSet(ctx context.Context, args []string) error {
	fs, df := m.daemonFlagSet("budget set", "budget set SCOPE[/ID] provider=N... [--json] [--socket PATH]", true)
	pos, err := m.parseArgs(fs, args, 2, -1)
	if err != nil {
		return err
	}
	scope, err := parseScope(pos[0])
	if err != nil {
		return m.usageError(fs, "%v", err)
	}
	var items []string
	for _, a := range pos[1:] {
		items = append(items, splitList(a)...)
	}
	limits, err := parseLimits(items)
	if err != nil {
		return m.usageError(fs, "%v", err)
	}
	b, err := m.client(df).PutBudget(ctx, scope, limits)
	if err != nil {
		return err
	}
	if df.json {
		return writeJSON(m.Stdout, b)
	}
	return printBudgets(m.Stdout, []api.Budget{b})
}

// runBudgetGet implements `bottlecap budget get|ls [SCOPE[/ID]] [--json]`:
// every limit of every scope, or of one scope, with its source.
func (m *Main) runBudgetGet(ctx context.Context, name string, args []string) error {
	fs, df := m.daemonFlagSet("budget "+name, "budget "+name+" [SCOPE[/ID]] [--json] [--socket PATH]", true)
	pos, err := m.parseArgs(fs, args, 0, 1)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		all, err := m.client(df).Budgets(ctx)
		if err != nil {
			return err
		}
		if df.json {
			return writeJSON(m.Stdout, nonNil(all))
		}
		return printLimitSources(m.Stdout, all)
	}
	scope, err := parseScope(pos[0])
	if err != nil {
		return m.usageError(fs, "%v", err)
	}
	b, err := m.client(df).Budget(ctx, scope)
	if err != nil {
		return err
	}
	if df.json {
		return writeJSON(m.Stdout, b)
	}
	return printBudgets(m.Stdout, []api.Budget{b})
}

// runBudgetRm implements `bottlecap budget rm SCOPE[/ID] [PROVIDER…]`:
// the limit in force at the scope for each provider (every provider when
// none is named) goes, and what it overrode is in force again.
func (m *Main) runBudgetRm(ctx context.Context, args []string) error {
	fs, df := m.daemonFlagSet("budget rm", "budget rm SCOPE[/ID] [PROVIDER...] [--json] [--socket PATH]", true)
	pos, err := m.parseArgs(fs, args, 1, -1)
	if err != nil {
		return err
	}
	scope, err := parseScope(pos[0])
	if err != nil {
		return m.usageError(fs, "%v", err)
	}
	var providers []string
	for _, a := range pos[1:] {
		for _, p := range splitList(a) {
			if err := budget.ValidateName("provider", p); err != nil {
				return m.usageError(fs, "%v", err)
			}
			providers = append(providers, p)
		}
	}
	b, err := m.client(df).RemoveBudget(ctx, scope, providers...)
	if err != nil {
		return err
	}
	if df.json {
		return writeJSON(m.Stdout, b)
	}
	return printRemoved(m.Stdout, b)
}

// printRemoved says what a removal took away and what is in force in its
// place: "removed claude 2000000 (runtime) at bottle/dev-1; in force now:
// 1000000 (settings)".
func printRemoved(w io.Writer, b api.Budget) error {
	name := scopeName(budget.Scope{Kind: budget.ScopeKind(b.Scope), ID: b.ID})
	for _, p := range removedProviders(b.Removed) {
		fmt.Fprintf(w, "removed %s %s at %s; ", p, sourcedLimits(b.Removed, p, false), name)
		if _, ok := b.Limits[p]; !ok {
			fmt.Fprintf(w, "no %s limit at %s now (wider scopes still apply)\n", p, name)
			continue
		}
		fmt.Fprintf(w, "in force now: %s\n", sourcedLimits(b.Sources, p, true))
	}
	return nil
}

// removedProviders lists the providers of removed limits once each, in
// their order.
func removedProviders(removed []api.BudgetLimit) []string {
	var out []string
	for _, l := range removed {
		if len(out) == 0 || out[len(out)-1] != l.Provider {
			out = append(out, l.Provider)
		}
	}
	return out
}

// sourcedLimits writes the limits of provider p among ls (those in force
// only, when inForce) with their source: "5000000/day+50000000/month
// (settings)".
func sourcedLimits(ls []api.BudgetLimit, p string, inForce bool) string {
	var parts []string
	source := ""
	for _, l := range ls {
		if l.Provider != p || (inForce && l.Overridden) {
			continue
		}
		parts = append(parts, exactLimits(budget.LimitSet{{Tokens: l.Limit, Window: windowOf(l.Window)}}))
		source = l.Source
	}
	return strings.Join(parts, "+") + " (" + source + ")"
}

// windowOf reads a window as the API writes it ("life" for none).
func windowOf(s string) budget.Window {
	w, err := budget.ParseWindow(s)
	if err != nil {
		return budget.LifeWindow
	}
	return w
}

// printBudgets writes the limits of each scope with their sources.
func printBudgets(w io.Writer, bs []api.Budget) error {
	var all []api.BudgetLimit
	for _, b := range bs {
		all = append(all, b.Sources...)
	}
	if len(all) == 0 && len(bs) == 1 {
		fmt.Fprintf(w, "no limits at %s\n", scopeName(budget.Scope{Kind: budget.ScopeKind(bs[0].Scope), ID: bs[0].ID}))
		return nil
	}
	return printLimitSources(w, all)
}

// printLimitSources writes a row per limit: its scope, provider, limit
// (exact, with its window), source, and whether it is in force or which
// source overrides it.
func printLimitSources(w io.Writer, ls []api.BudgetLimit) error {
	if len(ls) == 0 {
		fmt.Fprintln(w, "no budgets set (bottlecap budget set global claude=5M)")
		return nil
	}
	type key struct{ scope, id, provider string }
	winner := map[key]string{}
	for _, l := range ls {
		if !l.Overridden {
			winner[key{l.Scope, l.ID, l.Provider}] = l.Source
		}
	}
	t := newTable(w, "SCOPE", "PROVIDER", "LIMIT", "SOURCE", "IN FORCE")
	for _, l := range ls {
		inForce := "yes"
		if l.Overridden {
			inForce = "no: " + winner[key{l.Scope, l.ID, l.Provider}] + " overrides it"
		}
		t.row(scopeName(budget.Scope{Kind: budget.ScopeKind(l.Scope), ID: l.ID}), l.Provider,
			exactLimits(budget.LimitSet{{Tokens: l.Limit, Window: windowOf(l.Window)}}), l.Source, inForce)
	}
	return t.flush()
}
