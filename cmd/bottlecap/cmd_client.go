package main

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/client"
	"github.com/bot-bottle/bottlecap/settings"
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

// daemonFlagSet returns a FlagSet for a daemon command with --socket (and
// --json when withJSON), whose usage shows synopsis and the flags.
func (m *Main) daemonFlagSet(name, synopsis string, withJSON bool) (*flag.FlagSet, *daemonFlags) {
	fs := m.flags(name)
	df := &daemonFlags{}
	fs.StringVar(&df.socket, "socket", "", "the daemon's socket `path` (default: $BOTTLECAP_SOCKET, settings socket:, $BOT_BOTTLE_HOME/run/bottlecap.sock)")
	if withJSON {
		fs.BoolVar(&df.json, "json", false, "print the API's JSON")
	}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: bottlecap %s\n", synopsis)
		fs.PrintDefaults()
	}
	return fs, df
}

// parseArgs parses flags wherever they appear among args (`bottle show
// dev-1 --json` as well as `bottle show --json dev-1`) and checks that
// between lo and hi positional arguments remain (hi < 0: no limit).
// Everything after "--" is positional.
func (m *Main) parseArgs(fs *flag.FlagSet, args []string, lo, hi int) ([]string, error) {
	var pos, rest []string
	for i, a := range args {
		if a == "--" {
			args, rest = args[:i], args[i+1:]
			break
		}
	}
	for {
		if err := fs.Parse(args); err != nil {
			return nil, errUsage // flag has printed the problem and the usage
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	pos = append(pos, rest...)
	switch {
	case len(pos) < lo:
		return nil, m.usageError(fs, "missing argument (see the usage below)")
	case hi >= 0 && len(pos) > hi:
		return nil, m.usageError(fs, "unexpected argument %q", pos[hi])
	}
	return pos, nil
}

// usageError prints a problem with the command line and the command's
// usage, and returns errUsage (exit status 2).
func (m *Main) usageError(fs *flag.FlagSet, format string, args ...any) error {
	fmt.Fprintf(m.Stderr, "%s: %s\n", fs.Name(), fmt.Sprintf(format, args...))
	fs.Usage()
	return errUsage
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
