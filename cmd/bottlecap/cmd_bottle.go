package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
)

// bottleUsage lists the bottle subcommands.
const bottleUsage = `usage: bottlecap bottle register SLUG [--agent A] [--name N] [--parent P]
                        [--budget claude=1M,codex=500k] [--agent-budget reviewer:claude=200k]
                        [--shutdown cutoff|pause|freeze|kill] [--rate claude=300k/min]
                        [--container ID]...
       bottlecap bottle ls [--json]
       bottlecap bottle show SLUG [--json]
       bottlecap bottle rm SLUG
Every subcommand takes --socket PATH.`

// runBottle dispatches `bottlecap bottle register|ls|show|rm`.
func (m *Main) runBottle(ctx context.Context, args []string) error {
	subs := map[string]func(context.Context, []string) error{
		"register": m.runBottleRegister,
		"ls":       m.runBottleList,
		"show":     m.runBottleShow,
		"rm":       m.runBottleRemove,
	}
	if len(args) == 0 || subs[args[0]] == nil {
		if len(args) > 0 {
			fmt.Fprintf(m.Stderr, "bottlecap bottle: unknown subcommand %q\n", args[0])
		}
		fmt.Fprintln(m.Stderr, bottleUsage)
		return errUsage
	}
	return subs[args[0]](ctx, args[1:])
}

// runBottleList implements `bottlecap bottle ls [--json]`.
func (m *Main) runBottleList(ctx context.Context, args []string) error {
	fs, df := m.daemonFlagSet("bottle ls", "bottle ls [--json] [--socket PATH]", true)
	if _, err := m.parseArgs(fs, args, 0, 0); err != nil {
		return err
	}
	bs, err := m.client(df).Bottles(ctx)
	if err != nil {
		return err
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].Slug < bs[j].Slug })
	if df.json {
		return writeJSON(m.Stdout, nonNil(bs))
	}
	if len(bs) == 0 {
		fmt.Fprintln(m.Stdout, "no bottles (bottlecap bottle register SLUG, or start one with bot-bottle)")
		return nil
	}
	t := newTable(m.Stdout, "SLUG", "AGENT", "PARENT", "STATE", "PROVIDER", "USED", "HELD", "SCOPE", "LIMIT", "LEFT", "%")
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

// runBottleShow implements `bottlecap bottle show SLUG [--json]`.
func (m *Main) runBottleShow(ctx context.Context, args []string) error {
	fs, df := m.daemonFlagSet("bottle show", "bottle show SLUG [--json] [--socket PATH]", true)
	pos, err := m.parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	b, err := m.client(df).Bottle(ctx, pos[0])
	if err != nil {
		return err
	}
	if df.json {
		return writeJSON(m.Stdout, b)
	}
	return printBottle(m.Stdout, b)
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

// runBottleRemove implements `bottlecap bottle rm SLUG`.
func (m *Main) runBottleRemove(ctx context.Context, args []string) error {
	fs, df := m.daemonFlagSet("bottle rm", "bottle rm SLUG [--socket PATH]", false)
	pos, err := m.parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	if err := m.client(df).DeleteBottle(ctx, pos[0]); err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "forgot bottle %s (its usage stays in the ledger)\n", pos[0])
	return nil
}
