package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
)

// budgetCommand is `bottlecap budget set|get|ls|rm`.
func (m *Main) budgetCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "budget",
		Short: "Set, read and remove token limits at runtime",
		Long: "Limits at a SCOPE: global, bottle/SLUG or agent/SLUG/AGENT. " +
			"Runtime limits (budget set) beat registration and labels, which beat settings.yml. " +
			"A limit is tokens for the bottle's life (1M), per window (5M/day, 1M/week, 20M/month, rolling 500k/5h), or several (5M/day+50M/month).",
	}
	cmd.AddCommand(m.budgetSetCommand(), m.budgetGetCommand("get"), m.budgetGetCommand("ls"), m.budgetRmCommand())
	return cmd
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

// budgetSetCommand is `bottlecap budget set SCOPE[/ID] provider=N…`.
func (m *Main) budgetSetCommand() *cobra.Command {
	var df *daemonFlags
	cmd := &cobra.Command{
		Use:   "set SCOPE PROVIDER=LIMIT...",
		Short: "Set limits at a scope",
		Example: "bottlecap budget set global claude=5M\n" +
			"bottlecap budget set bottle/dev-1 claude=1M codex=500k\n" +
			"bottlecap budget set bottle/dev-1 claude=5M/day+50M/month\n" +
			"bottlecap budget set agent/dev-1/reviewer claude=200k",
		Args: positional(2, -1),
		RunE: func(cmd *cobra.Command, args []string) error {
			scope, err := parseScope(args[0])
			if err != nil {
				return asUsage(err)
			}
			var items []string
			for _, a := range args[1:] {
				items = append(items, splitList(a)...)
			}
			limits, err := parseLimits(items)
			if err != nil {
				return asUsage(err)
			}
			b, err := m.client(df).PutBudget(cmd.Context(), scope, limits)
			if err != nil {
				return err
			}
			return writeReply(m, df, b, printBudget)
		},
	}
	df = addDaemonFlags(cmd, true)
	return cmd
}

// budgetGetCommand is `bottlecap budget get|ls [SCOPE[/ID]] [--json]`:
// every limit of every scope, or of one scope, with its source.
func (m *Main) budgetGetCommand(name string) *cobra.Command {
	var df *daemonFlags
	cmd := &cobra.Command{
		Use:     name + " [SCOPE]",
		Short:   "Every limit (or one scope's) with its source, in force or overridden",
		Example: "bottlecap budget " + name + "\nbottlecap budget " + name + " bottle/dev-1 --json",
		Args:    positional(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return m.runBudgetGet(cmd.Context(), df, args)
		},
	}
	df = addDaemonFlags(cmd, true)
	return cmd
}

func (m *Main) runBudgetGet(ctx context.Context, df *daemonFlags, args []string) error {
	if len(args) == 0 {
		all, err := m.client(df).Budgets(ctx)
		if err != nil {
			return err
		}
		return writeReply(m, df, nonNil(all), printLimitSources)
	}
	scope, err := parseScope(args[0])
	if err != nil {
		return asUsage(err)
	}
	b, err := m.client(df).Budget(ctx, scope)
	if err != nil {
		return err
	}
	return writeReply(m, df, b, printBudget)
}

// budgetRmCommand is `bottlecap budget rm SCOPE[/ID] [PROVIDER…]`: the
// limit in force at the scope for each provider (every provider when none
// is named) goes, and what it overrode is in force again.
func (m *Main) budgetRmCommand() *cobra.Command {
	var df *daemonFlags
	cmd := &cobra.Command{
		Use:     "rm SCOPE [PROVIDER...]",
		Short:   "Remove runtime or registered limits; what they overrode is in force again",
		Example: "bottlecap budget rm bottle/dev-1 claude\nbottlecap budget rm global",
		Args:    positional(1, -1),
		RunE: func(cmd *cobra.Command, args []string) error {
			scope, err := parseScope(args[0])
			if err != nil {
				return asUsage(err)
			}
			var providers []string
			for _, a := range args[1:] {
				for _, p := range splitList(a) {
					if err := budget.ValidateName("provider", p); err != nil {
						return asUsage(err)
					}
					providers = append(providers, p)
				}
			}
			b, err := m.client(df).RemoveBudget(cmd.Context(), scope, providers...)
			if err != nil {
				return err
			}
			return writeReply(m, df, b, printRemoved)
		},
	}
	df = addDaemonFlags(cmd, true)
	return cmd
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

// printBudget writes the limits of one scope with their sources.
func printBudget(w io.Writer, b api.Budget) error {
	if len(b.Sources) == 0 {
		fmt.Fprintf(w, "no limits at %s\n", scopeName(budget.Scope{Kind: budget.ScopeKind(b.Scope), ID: b.ID}))
		return nil
	}
	return printLimitSources(w, b.Sources)
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
