package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/charmbracelet/fang"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

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
	// StdinIsTerminal says whether a person at a terminal can answer a
	// question on Stdin (kill and freeze ask one); nil means no.
	StdinIsTerminal func() bool
}

// NewMain returns a Main wired to the process's stdio and environment.
func NewMain() *Main {
	return &Main{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv,
		StdinIsTerminal: func() bool { return isTerminal(os.Stdin) }}
}

// isTerminal reports whether f is a terminal: a character device that
// answers the terminal ioctl (/dev/null, also a character device, does not).
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// Exit codes. A usage error is 2 (as flag, cobra's callers and most Unix
// tools have it); --wait's timeout has a code of its own, so that a script
// can tell "failed" (1) from "not finished yet" (3).
const (
	exitOK      = 0
	exitFailed  = 1
	exitUsage   = 2
	exitTimeout = 3
)

// usageError is a command line that was wrong: exit 2, one line saying
// what is wrong, and where the usage is: the help of helpOf, or of the
// command that failed.
type usageError struct {
	msg    string
	helpOf *cobra.Command
}

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// asUsage makes err, a problem with the command line, a usage error.
func asUsage(err error) error { return &usageError{msg: err.Error()} }

// exitError carries an exit code other than 1 with its message.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// Run executes one command line and returns the process exit code.
func (m *Main) Run(ctx context.Context, args []string) int {
	root := m.newRoot()
	forHelp(root)
	root.SetArgs(append([]string{}, args...)) // never nil: cobra would read os.Args
	err := fang.Execute(ctx, root, fang.WithoutVersion(), fang.WithoutManpage(),
		fang.WithErrorHandler(m.errorHandler(root, args)))
	if err != nil {
		m.printDaemonDown(root, args, err)
	}
	return exitCode(err)
}

// exitCode maps what a command returned to the process's exit code.
func exitCode(err error) int {
	var ue *usageError
	var ee *exitError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &ee):
		return ee.code
	}
	return exitFailed
}

// errorHandler prints a failed command line's error: one line naming the
// command, and for a usage error where to read the usage, never the
// usage itself.
func (m *Main) errorHandler(root *cobra.Command, args []string) fang.ErrorHandler {
	return func(w io.Writer, styles fang.Styles, err error) {
		failed := commandOf(root, args)
		fmt.Fprintf(w, "%s: %s\n", styles.Program.Name.Render(failed.CommandPath()), err)
		if exitCode(err) != exitUsage {
			return
		}
		var ue *usageError
		if errors.As(err, &ue) && ue.helpOf != nil {
			failed = ue.helpOf
		}
		fmt.Fprintf(w, "Run '%s' for usage.\n", styles.Program.Flag.Render(failed.CommandPath()+" --help"))
	}
}

// commandOf is the command args name (root when they name none).
func commandOf(root *cobra.Command, args []string) *cobra.Command {
	cmd, _, err := root.Find(args)
	if err != nil || cmd == nil {
		return root
	}
	return cmd
}

// Command groups of the root's help.
const (
	groupDaemon  = "daemon"
	groupBudgets = "budgets"
	groupActions = "actions"
)

// newRoot builds the whole command tree (SPEC section 8): the one place
// where commands are put together.
func (m *Main) newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "bottlecap",
		Short: "The token budget control plane for bot-bottle",
		Long: "bottlecap meters the LLM tokens that coding agents in bot-bottle's Docker bottles spend, " +
			"keeps a ledger, and cuts a bottle off, pauses, freezes or kills it when its budget is spent.\n\n" +
			"Commands that talk to the daemon find its socket in --socket, $BOTTLECAP_SOCKET, settings.yml's socket:, " +
			"then $BOT_BOTTLE_HOME/run/bottlecap.sock. Exit codes: 0 ok, 1 failed, 2 usage error, 3 --wait timed out.",
		Example: `# start the daemon, then look at it
bottlecap serve
bottlecap status
# a global budget, and a bottle's own
bottlecap budget set global claude=5M
bottlecap bottle register dev-1 --budget claude=1M
# stop a runaway bottle and wait until it is stopped
bottlecap cutoff dev-1 --reason "runaway loop" --wait`,
		Args:              subcommandArgs,
		RunE:              m.runRoot,
		SilenceErrors:     true,
		SilenceUsage:      true,
		DisableAutoGenTag: true,
	}
	root.Flags().Bool("version", false, "print the version (the same as bottlecap version)")
	root.SetIn(m.Stdin)
	root.SetOut(m.Stdout)
	root.SetErr(m.Stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{msg: err.Error()} })
	root.AddGroup(
		&cobra.Group{ID: groupDaemon, Title: "the daemon and its companions"},
		&cobra.Group{ID: groupBudgets, Title: "bottles and budgets"},
		&cobra.Group{ID: groupActions, Title: "actions on bottles"},
	)
	addTo(root, groupDaemon, m.serveCommand(), m.dashCommand(), m.meterCommand(), m.demoCommand())
	addTo(root, groupBudgets, m.statusCommand(), m.bottleCommand(), m.budgetCommand(), m.reportCommand(), m.usageCommand())
	addTo(root, groupActions, m.actionCommand(budget.ActCutoff), m.actionCommand(budget.ActPause),
		m.actionCommand(budget.ActFreeze), m.actionCommand(budget.ActKill), m.actionCommand(budget.ActRestore),
		m.actionsCommand(), m.auditCommand())
	root.AddCommand(m.settingsCommand(), m.versionCommand(), m.genDocsCommand())
	root.SetHelpCommand(helpCommand(root))
	root.InitDefaultCompletionCmd()
	tidyCompletion(root)
	tidyGroups(root)
	return root
}

// addTo adds cmds to root in the help's group.
func addTo(root *cobra.Command, group string, cmds ...*cobra.Command) {
	for _, c := range cmds {
		c.GroupID = group
		root.AddCommand(c)
	}
}

// runRoot is `bottlecap` alone (the help) and `bottlecap --version`.
func (m *Main) runRoot(cmd *cobra.Command, _ []string) error {
	if v, _ := cmd.Flags().GetBool("version"); v {
		return m.printVersion(false)
	}
	return cmd.Help()
}

// subcommandArgs refuses an argument where a subcommand is expected,
// suggesting the subcommands it may be a typo of (`bottlecap stauts`).
func subcommandArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "; did you mean " + strings.Join(quoteAll(s), " or ") + "?"
	}
	return &usageError{msg: msg, helpOf: cmd}
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = "'" + s + "'"
	}
	return out
}

// missingSubcommand is what a group alone (`bottlecap bottle`) does: a
// usage error naming its subcommands.
func missingSubcommand(cmd *cobra.Command, _ []string) error {
	var names []string
	for _, c := range cmd.Commands() {
		if c.IsAvailableCommand() {
			names = append(names, c.Name())
		}
	}
	return usageErrorf("missing command: want %s", strings.Join(names, ", "))
}

// onlyGroup annotates a command that only groups others (bottle, budget).
const onlyGroup = "bottlecap/only-group"

// tidyGroups gives every command with subcommands the manners of the
// root: an unknown subcommand is a usage error with suggestions, and a
// group alone says which subcommands it has (cobra would print the help
// and exit 0 for both).
func tidyGroups(c *cobra.Command) {
	if c.HasSubCommands() {
		c.Args = subcommandArgs
		c.SuggestionsMinimumDistance = 2 // cobra's default, which SuggestionsFor does not apply
		if c.RunE == nil && c.Run == nil {
			c.RunE = missingSubcommand
			c.Annotations = map[string]string{onlyGroup: "true"}
		}
	}
	for _, sub := range c.Commands() {
		tidyGroups(sub)
	}
}

// tidyCompletion hides cobra's PowerShell script (bottlecap runs on Linux),
// gives the scripts' commands our usage errors and shows how to install
// each script.
func tidyCompletion(root *cobra.Command) {
	for _, c := range root.Commands() {
		if c.Name() != "completion" {
			continue
		}
		c.Example = "bottlecap completion bash > /etc/bash_completion.d/bottlecap\n" +
			"bottlecap completion zsh > \"${fpath[1]}/_bottlecap\"\n" +
			"bottlecap completion fish > ~/.config/fish/completions/bottlecap.fish"
		for _, sh := range c.Commands() {
			sh.Args = positional(0, 0) // a usage error of ours, not cobra's plain one
			if sh.Name() == "powershell" {
				sh.Hidden = true
			}
		}
	}
}

// helpCommand is `bottlecap help [COMMAND...]`: the command's help, or a
// usage error with suggestions for a command that does not exist (cobra's
// own prints the root's usage and exits 0).
func helpCommand(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:   "help [COMMAND...]",
		Short: "Help about any command",
		RunE: func(_ *cobra.Command, args []string) error {
			target, rest, err := root.Find(args)
			if err != nil {
				return err
			}
			if len(rest) > 0 {
				return subcommandArgs(target, rest)
			}
			return target.Help()
		},
		ValidArgsFunction: func(_ *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
			target, _, err := root.Find(args)
			if err != nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			var names []cobra.Completion
			for _, c := range target.Commands() {
				if c.IsAvailableCommand() {
					names = append(names, cobra.CompletionWithDesc(c.Name(), c.Short))
				}
			}
			return names, cobra.ShellCompDirectiveNoFileComp
		},
	}
}

// forHelp readies the tree for fang's help, which shows a flag's usage as
// written: the backquotes that name a flag's value for pflag (the man page
// and docs/cli.md show `--socket path`) go.
func forHelp(c *cobra.Command) {
	c.Flags().VisitAll(func(f *pflag.Flag) { f.Usage = strings.ReplaceAll(f.Usage, "`", "") })
	for _, sub := range c.Commands() {
		forHelp(sub)
	}
}

// positional checks that between lo and hi positional arguments were given
// (hi < 0: no limit), naming the missing one from the command's Use line.
func positional(lo, hi int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		switch {
		case len(args) < lo:
			return usageErrorf("missing argument %s", argName(cmd, len(args)))
		case hi >= 0 && len(args) > hi:
			return usageErrorf("unexpected argument %q", args[hi])
		}
		return nil
	}
}

// argName is the name the Use line gives the i-th positional argument
// ("show SLUG": SLUG), or "" when it names none.
func argName(cmd *cobra.Command, i int) string {
	var names []string
	for _, f := range strings.Fields(cmd.Use)[1:] {
		if !strings.HasPrefix(f, "[") && !strings.HasPrefix(f, "-") {
			names = append(names, strings.TrimSuffix(f, "..."))
		}
	}
	if i < len(names) {
		return names[i]
	}
	return ""
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
