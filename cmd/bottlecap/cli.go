package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/bot-bottle/bottlecap/budget"
)

// Main is the whole program behind os.Args, with its outside world injected
// so that tests can run any command in-process.
type Main struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Getenv reads the environment (BOT_BOTTLE_HOME, HOME).
	Getenv func(string) string
}

// NewMain returns a Main wired to the process's stdio and environment.
func NewMain() *Main {
	return &Main{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}
}

// errUsage marks a command line that was wrong; the usage was already printed.
var errUsage = errors.New("usage")

// command is one subcommand: its one-line synopsis and how to run it.
type command struct {
	synopsis string
	run      func(m *Main, ctx context.Context, args []string) error
}

// commands is the table of subcommands (SPEC section 8).
var commands = map[string]command{
	"version":  {"print the version", (*Main).runVersion},
	"settings": {"settings check [FILE]: validate a settings file", (*Main).runSettings},
	"serve":    {"run the daemon (foreground)", (*Main).runServe},
	"meter":    {"meter --bottle SLUG [flags]: the metering proxy in front of the provider APIs", (*Main).runMeter},
	"usage":    {"usage parse [--format F] FILE: print the normalised usage of a response or stream", (*Main).runUsage},
	"status":   {"status [--json]: daemon health and a one-screen summary", (*Main).runStatus},
	"report":   {"report --id ID --bottle SLUG [flags]: send one usage report", (*Main).runReport},
	"bottle":   {"bottle register SLUG [flags] | ls | show SLUG | rm SLUG", (*Main).runBottle},
	"budget":   {"budget set SCOPE[/ID] provider=N... | get|ls [SCOPE[/ID]] | rm SCOPE[/ID] [PROVIDER...]", (*Main).runBudget},
	"cutoff":   {"cutoff SLUG [--reason R]: cut a bottle off the network", actionCommand(budget.ActCutoff)},
	"pause":    {"pause SLUG [--reason R]: pause a bottle's agent containers (its sidecars run on)", actionCommand(budget.ActPause)},
	"freeze":   {"freeze SLUG [--reason R]: commit and stop a bottle", actionCommand(budget.ActFreeze)},
	"kill":     {"kill SLUG [--reason R]: stop and remove a bottle", actionCommand(budget.ActKill)},
	"restore":  {"restore SLUG [--reason R]: undo a cutoff or a pause", actionCommand(budget.ActRestore)},
	"actions":  {"actions [--status S]: the enforcement action journal", (*Main).runActions},
	"audit":    {"audit [--bottle B] [--limit N] | audit verify", (*Main).runAudit},
	"dash":     {dashSynopsis + ": the dashboard", (*Main).runDash},
	"demo":     {"demo [--speed X] [--no-dash]: a simulated host with the dashboard; touches no containers", (*Main).runDemo},
}

// Run executes one command line and returns the process exit code.
func (m *Main) Run(ctx context.Context, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		m.usage(m.Stdout)
		return 0
	}
	if args[0] == "--version" {
		args = append([]string{"version"}, args[1:]...)
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(m.Stderr, "bottlecap: unknown command %q\n\n", args[0])
		m.usage(m.Stderr)
		return 2
	}
	if err := cmd.run(m, ctx, args[1:]); err != nil {
		if errors.Is(err, errUsage) || errors.Is(err, flag.ErrHelp) {
			return 2
		}
		fmt.Fprintf(m.Stderr, "bottlecap %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

func (m *Main) usage(w io.Writer) {
	fmt.Fprintln(w, "usage: bottlecap <command> [flags]")
	fmt.Fprintln(w)
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].synopsis)
	}
}

// flags returns a FlagSet that prints its errors and usage to m.Stderr.
func (m *Main) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("bottlecap "+name, flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	return fs
}

// home is $BOT_BOTTLE_HOME, or ~/.bot-bottle.
func (m *Main) home() string {
	if h := m.Getenv("BOT_BOTTLE_HOME"); h != "" {
		return h
	}
	if h := m.Getenv("HOME"); h != "" {
		return filepath.Join(h, ".bot-bottle")
	}
	return filepath.Join(os.TempDir(), ".bot-bottle")
}
