package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
)

// bottleCommand is `bottlecap bottle register|ls|show|rm`.
func (m *Main) bottleCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bottle",
		Short: "Register, list, show and forget bottles",
		Long: "A bottle is one bot-bottle sandbox: a slug, an agent, a parent, budgets and containers. " +
			"The daemon discovers bot-bottle's containers by their labels; bottle register does the same by hand.",
	}
	cmd.AddCommand(m.bottleRegisterCommand(), m.bottleListCommand(), m.bottleShowCommand(), m.bottleRemoveCommand())
	return cmd
}

// bottleListCommand is `bottlecap bottle ls [--json]`.
func (m *Main) bottleListCommand() *cobra.Command {
	var df *daemonFlags
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List the bottles with their usage and budgets",
		Args:    positional(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return m.runBottleList(cmd.Context(), df)
		},
	}
	df = addDaemonFlags(cmd, true)
	return cmd
}

func (m *Main) runBottleList(ctx context.Context, df *daemonFlags) error {
	bs, err := m.client(df).Bottles(ctx)
	if err != nil {
		return err
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].Slug < bs[j].Slug })
	return writeReply(m, df, nonNil(bs), printBottles)
}

// printBottles writes a row per bottle and provider.
func printBottles(w io.Writer, bs []api.Bottle) error {
	if len(bs) == 0 {
		fmt.Fprintln(w, "no bottles (bottlecap bottle register SLUG, or start one with bot-bottle)")
		return nil
	}
	t := newTable(w, "SLUG", "AGENT", "PARENT", "STATE", "PROVIDER", "USED", "HELD", "SCOPE", "LIMIT", "LEFT", "%")
	for _, b := range bs {
		head := []string{b.Slug, orDash(b.Agent), orDash(b.Parent), string(b.State)}
		for i, row := range providerRows(b) {
			if i > 0 {
				head = []string{"", "", "", ""}
			}
			t.row(append(head, row[:len(row)-1]...)...)
		}
	}
	return t.flush()
}

// providerRows are a bottle's rows per provider: PROVIDER, USED and HELD
// (the bottle's whole subtree: reported, and granted to allowances but not
// yet reported), the governing SCOPE, LIMIT, LEFT (neither used nor held),
// % and ALLOWED. A bottle with no usage and no verdict gets one row of
// dashes.
func providerRows(b api.Bottle) [][]string {
	verdicts := map[string]budget.Verdict{}
	for _, v := range b.Verdicts {
		verdicts[v.Provider] = v
	}
	providers := sortedKeys(b.Usage)
	for _, p := range sortedKeys(verdicts) {
		if _, ok := b.Usage[p]; !ok {
			providers = append(providers, p)
		}
	}
	if len(providers) == 0 {
		return [][]string{{"-", "-", "-", "-", "-", "-", "-", "-"}}
	}
	rows := make([][]string, 0, len(providers))
	for _, p := range providers {
		v, ok := verdicts[p]
		if !ok {
			rows = append(rows, []string{p, formatTokens(b.Usage[p]), formatTokens(b.Held[p]), "-", "-", "-", "-", "-"})
			continue
		}
		row := append([]string{p, formatTokens(b.Usage[p]), formatTokens(b.Held[p]), scopeName(v.Scope)}, limitCells(v)...)
		rows = append(rows, append(row, allowedCell(v)))
	}
	return rows
}

// bottleShowCommand is `bottlecap bottle show SLUG [--json]`.
func (m *Main) bottleShowCommand() *cobra.Command {
	var df *daemonFlags
	cmd := &cobra.Command{
		Use:               "show SLUG",
		Short:             "One bottle: its registration, usage, budgets and state",
		Args:              positional(1, 1),
		ValidArgsFunction: m.completeSlugs,
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := m.client(df).Bottle(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return writeReply(m, df, b, printBottle)
		},
	}
	df = addDaemonFlags(cmd, true)
	return cmd
}

// printBottle writes one bottle: its registration, then a row per provider.
func printBottle(w io.Writer, b api.Bottle) error {
	t := newTable(w, "bottle", b.Slug)
	t.row("agent", orDash(b.Agent))
	t.row("name", orDash(b.Name))
	t.row("parent", orDash(b.Parent))
	t.row("state", stateLine(b.Bottle))
	t.row("shutdown", orDash(string(b.Shutdown)))
	for _, g := range b.RateGuards {
		t.row("rate guard", rateLine(g))
	}
	t.row("budget", formatLimits(b.Budget))
	if len(b.LabelBudget) > 0 {
		t.row("label budget", formatLimits(b.LabelBudget))
	}
	for _, a := range sortedKeys(b.AgentBudgets) {
		t.row("agent budget", a+":"+formatLimits(b.AgentBudgets[a]))
	}
	t.row("containers", orDash(strings.Join(b.Containers, ", ")))
	t.row("registered", formatTime(b.CreatedAt))
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	p := newTable(w, "PROVIDER", "USED", "HELD", "SCOPE", "LIMIT", "LEFT", "%", "ALLOWED")
	for _, row := range providerRows(b) {
		p.row(row...)
	}
	if err := p.flush(); err != nil {
		return err
	}
	return printLimitUses(w, b.Limits)
}

// stateLine is a bottle's state with why, and when the rate guard put it
// there, what lifts it.
func stateLine(b budget.Bottle) string {
	s := string(b.State)
	if b.StateReason != "" {
		s += " (" + b.StateReason + ")"
	}
	if b.RateLiftable() {
		s += "; the guard lifts it once the rate has stayed under it for a minute"
	}
	return s
}

// rateLine is one rate guard and what the bottle reported in the last
// minute: "claude 300k/min (12.5k in the last minute)".
func rateLine(g api.RateGuard) string {
	return fmt.Sprintf("%s %s (%s in the last minute)", g.Provider, budget.FormatRate(g.Guard), formatTokens(g.LastMinute))
}

// bottleRemoveCommand is `bottlecap bottle rm SLUG`.
func (m *Main) bottleRemoveCommand() *cobra.Command {
	var df *daemonFlags
	cmd := &cobra.Command{
		Use:               "rm SLUG",
		Aliases:           []string{"remove"},
		Short:             "Forget a bottle (its usage stays in the ledger)",
		Args:              positional(1, 1),
		ValidArgsFunction: m.completeSlugs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := m.client(df).DeleteBottle(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(m.Stdout, "forgot bottle %s (its usage stays in the ledger)\n", args[0])
			return nil
		},
	}
	df = addDaemonFlags(cmd, false)
	return cmd
}
