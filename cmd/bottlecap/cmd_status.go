package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/enforcement"
)

// runStatus implements `bottlecap status [--json]`: daemon health and the
// global budget on one screen.
func (m *Main) runStatus(ctx context.Context, args []string) error {
	fs, df := m.daemonFlagSet("status", "status [--json] [--socket PATH]", true)
	if _, err := m.parseArgs(fs, args, 0, 0); err != nil {
		return err
	}
	st, err := m.client(df).Status(ctx)
	if err != nil {
		return err
	}
	if df.json {
		return writeJSON(m.Stdout, st)
	}
	return printStatus(m.Stdout, st)
}

// printStatus writes the status summary for people.
func printStatus(w io.Writer, st api.Status) error {
	up := (time.Duration(st.UptimeSeconds) * time.Second).String()
	fmt.Fprintf(w, "bottlecap %s: running (pid %d, up %s)\n", st.Version, st.PID, up)
	t := newTable(w, "socket", st.Socket)
	t.row("store", st.Store)
	t.row("ledger", ledgerLine(st))
	t.row("docker", dockerLine(st.Docker))
	if id := st.Docker.DaemonID; id != "" {
		t.row("daemon id", id+" (takes only the containers labelled "+enforcement.LabelDaemon+"="+id+")")
	}
	t.row("precedence", st.Precedence)
	t.row("bottles", bottlesLine(st))
	t.row("reports", fmt.Sprint(st.Reports))
	t.row("pending actions", fmt.Sprint(st.PendingActions))
	t.row("allowances", allowancesLine(st))
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	if len(st.Global) == 0 {
		fmt.Fprintln(w, "global budget: none set (bottlecap budget set global claude=5M)")
		return nil
	}
	g := newTable(w, "PROVIDER", "USED", "HELD", "LIMIT", "LEFT", "%", "ALLOWED")
	for _, v := range st.Global {
		g.row(append(append([]string{v.Provider, formatTokens(v.Used), formatTokens(v.Held)}, limitCells(v)...), allowedCell(v))...)
	}
	if err := g.flush(); err != nil {
		return err
	}
	return printLimitUses(w, st.Limits)
}

// bottlesLine is how many bottles the daemon knows, and how many are in
// each state: "3 (1 active, 1 paused, 1 cut_off)".
func bottlesLine(st api.Status) string {
	line := fmt.Sprint(st.Bottles)
	var parts []string
	for _, s := range slices.Sorted(maps.Keys(st.BottleStates)) {
		parts = append(parts, fmt.Sprintf("%d %s", st.BottleStates[s], s))
	}
	if len(parts) > 0 {
		line += " (" + strings.Join(parts, ", ") + ")"
	}
	return line
}

// allowancesLine is how many allowances meters hold and how many tokens
// they hold in all, per provider.
func allowancesLine(st api.Status) string {
	line := fmt.Sprint(st.Allowances)
	var held []string
	for _, p := range sortedKeys(st.Held) {
		held = append(held, p+" "+formatTokens(st.Held[p]))
	}
	if len(held) > 0 {
		line += ", holding " + strings.Join(held, ", ")
	}
	return line
}

// dockerLine says whether enforcement can reach the engine.
func dockerLine(d api.DockerStatus) string {
	switch {
	case !d.Enabled:
		return "disabled (no enforcement)"
	case d.Reachable && d.APIVersion != "":
		return "reachable (API " + d.APIVersion + ")"
	case d.Reachable:
		return "reachable"
	case d.Error != "":
		return "unreachable: " + d.Error
	}
	return "unreachable"
}

// ledgerLine says whether the ledger takes writes: a read-only ledger means
// reports are refused (the sidecars retry) until it is fixed.
func ledgerLine(st api.Status) string {
	if !st.StoreReadOnly {
		return "writable"
	}
	return "READ-ONLY, reports are refused: " + st.StoreError
}
