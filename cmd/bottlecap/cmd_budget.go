package main

import (
	"context"
	"flag"
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
       bottlecap budget get [SCOPE[/ID]] [--json]
Every subcommand takes --socket PATH.`

// runBudget dispatches `bottlecap budget set|get`.
func (m *Main) runBudget(ctx context.Context, args []string) error {
	switch {
	case len(args) > 0 && args[0] == "set":
		return m.runBudgetSet(ctx, args[1:])
	case len(args) > 0 && args[0] == "get":
		return m.runBudgetGet(ctx, args[1:])
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

// runBudgetGet implements `bottlecap budget get [SCOPE[/ID]] [--json]`:
// every scope's limits, or one scope's.
func (m *Main) runBudgetGet(ctx context.Context, args []string) error {
	fs, df := m.daemonFlagSet("budget get", "budget get [SCOPE[/ID]] [--json] [--socket PATH]", true)
	pos, err := m.parseArgs(fs, args, 0, 1)
	if err != nil {
		return err
	}
	var bs []api.Budget
	if len(pos) == 0 {
		bs, err = m.client(df).Budgets(ctx)
	} else {
		bs, err = m.getOneBudget(ctx, fs, df, pos[0])
	}
	if err != nil {
		return err
	}
	if df.json && len(pos) == 1 {
		return writeJSON(m.Stdout, bs[0])
	}
	if df.json {
		return writeJSON(m.Stdout, nonNil(bs))
	}
	return printBudgets(m.Stdout, bs)
}

// getOneBudget fetches one scope's budget, checking the scope first.
func (m *Main) getOneBudget(ctx context.Context, fs *flag.FlagSet, df *daemonFlags, arg string) ([]api.Budget, error) {
	scope, err := parseScope(arg)
	if err != nil {
		return nil, m.usageError(fs, "%v", err)
	}
	b, err := m.client(df).Budget(ctx, scope)
	if err != nil {
		return nil, err
	}
	return []api.Budget{b}, nil
}

// printBudgets writes a row per scope and provider, limits exact.
func printBudgets(w io.Writer, bs []api.Budget) error {
	if len(bs) == 0 {
		fmt.Fprintln(w, "no budgets set (bottlecap budget set global claude=5M)")
		return nil
	}
	t := newTable(w, "SCOPE", "PROVIDER", "LIMIT")
	for _, b := range bs {
		name := scopeName(budget.Scope{Kind: budget.ScopeKind(b.Scope), ID: b.ID})
		if len(b.Limits) == 0 {
			t.row(name, "-", "-")
		}
		for _, p := range sortedKeys(b.Limits) {
			t.row(name, p, exactLimits(b.Limits[p]))
		}
	}
	return t.flush()
}
