package main

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/client"
	"github.com/bot-bottle/bottlecap/enforcement"
)

// statusCommand is `bottlecap status [--json]`: daemon health and the
// global budget on one screen.
func (m *Main) statusCommand() *cobra.Command {
	var df *daemonFlags
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Daemon health and a one-screen summary",
		Long: "Whether the daemon runs, its ledger and Docker engine, how many bottles it knows in which states, " +
			"and the global budget. Exit 1 when the daemon cannot be reached; with --json it then prints " +
			`{"daemon": {"running": false, "socket": "…", "error": "…"}}, and when it runs the status with "daemon": {"running": true, …}.`,
		Example: "bottlecap status\nbottlecap status --json | jq .daemon.running",
		Args:    positional(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c := m.client(df)
			st, err := c.Status(cmd.Context())
			if err != nil {
				return err
			}
			if df.json {
				return writeJSON(m.Stdout, statusJSON{Status: st, Daemon: daemonState{Running: true, Socket: c.Socket()}})
			}
			return printStatus(m.Stdout, st)
		},
	}
	df = addDaemonFlags(cmd, true)
	return cmd
}

// daemonState is the "daemon" object of --json output: whether the daemon
// answered at its socket, and if not why. Every --json command prints
// {"daemon": daemonState} when it cannot reach the daemon.
type daemonState struct {
	Running bool   `json:"running"`
	Socket  string `json:"socket"`
	Error   string `json:"error,omitempty"`
}

// statusJSON is `status --json`: the API's status and the daemon object,
// the same key a down daemon is reported under.
type statusJSON struct {
	api.Status
	Daemon daemonState `json:"daemon"`
}

// printDaemonDown prints {"daemon": {"running": false, …}} on stdout when
// a --json command failed to reach the daemon, so that a script reading
// stdout finds a stable shape rather than nothing.
func (m *Main) printDaemonDown(root *cobra.Command, args []string, err error) {
	var de *client.DialError
	if !errors.As(err, &de) {
		return
	}
	f := commandOf(root, args).Flags().Lookup("json")
	if f == nil || f.Value.String() != "true" {
		return
	}
	writeJSON(m.Stdout, map[string]daemonState{"daemon": {Running: false, Socket: de.Socket, Error: de.Error()}})
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
	if err := printGlobal(w, st); err != nil {
		return err
	}
	return printFleet(w, st)
}

// printGlobal writes the global budget of every provider.
func printGlobal(w io.Writer, st api.Status) error {
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
