package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/client"
	"github.com/bot-bottle/bottlecap/settings"
	"github.com/spf13/cobra"
)

// cliRetry is how long a command keeps trying while the daemon is down or
// busy: long enough to ride over a daemon restart, short enough that "is it
// running?" comes back promptly. Tests shorten it.
var cliRetry = 2 * time.Second

// daemonFlags are the flags every command that talks to the daemon takes.
type daemonFlags struct {
	socket string
	json   bool
}

// addDaemonFlags gives cmd --socket, and --json when withJSON.
func addDaemonFlags(cmd *cobra.Command, withJSON bool) *daemonFlags {
	df := &daemonFlags{}
	cmd.Flags().StringVar(&df.socket, "socket", "", "the daemon's socket `path` (default: $BOTTLECAP_SOCKET, settings socket:, $BOT_BOTTLE_HOME/run/bottlecap.sock)")
	if withJSON {
		addJSONFlag(cmd, &df.json)
	}
	return df
}

// addJSONFlag gives cmd --json.
func addJSONFlag(cmd *cobra.Command, into *bool) {
	cmd.Flags().BoolVar(into, "json", false, "print JSON (the API's own shapes, stable across releases)")
}

// socketPath resolves the daemon's socket as the daemon does: --socket,
// $BOTTLECAP_SOCKET, settings.yml's socket:, then the home's default.
func (m *Main) socketPath(flagValue string) string {
	env := m.Getenv(client.EnvSocket)
	if flagValue != "" || env != "" {
		return client.ResolveSocket(flagValue, env, "", m.home())
	}
	s, err := settings.Load(m.settingsPath())
	if err != nil {
		// Fallback: a broken settings file must not stop `bottlecap status`
		// from reaching a daemon still running with its last good settings;
		// say which socket we try instead.
		fmt.Fprintf(m.Stderr, "bottlecap: warning: %v\nbottlecap: trying the default socket\n", err)
		return client.SocketPath(m.home(), "")
	}
	return client.ResolveSocket("", "", s.Socket, m.home())
}

// client returns a client of the daemon at the resolved socket.
func (m *Main) client(df *daemonFlags) *client.Client {
	return client.New(m.socketPath(df.socket), client.WithRetry(cliRetry))
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// parseLimits parses provider=limits items ("claude=1M", "codex=500k/day",
// "claude=5M/day+50M/month") into limits, checking every name, amount and
// window before anything is sent.
func parseLimits(items []string) (budget.Limits, error) {
	out := budget.Limits{}
	for _, it := range items {
		p, amt, ok := strings.Cut(it, "=")
		if !ok {
			return nil, fmt.Errorf("%q: want provider=amount, e.g. claude=1M or claude=5M/day+50M/month", it)
		}
		if err := budget.ValidateName("provider", p); err != nil {
			return nil, err
		}
		set, err := budget.ParseLimitSet(amt)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		out[p] = set
	}
	if len(out) == 0 {
		return nil, errors.New("no provider=amount given, e.g. claude=1M")
	}
	return out, nil
}
