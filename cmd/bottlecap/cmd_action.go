package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/client"
)

// defaultWaitTimeout is how long --wait waits unless --timeout says: the
// enforcer retries an engine that errors with backoff, and a freeze
// commits a whole container, so a minute may pass on a busy host.
const defaultWaitTimeout = 2 * time.Minute

// waitPoll is how often --wait reads the action again when no event has
// said that it changed (a daemon restart ends the event stream).
var waitPoll = time.Second

// actionHelp says what each action does, for its help.
var actionHelp = map[budget.ActionKind]struct{ short, long string }{
	budget.ActCutoff: {"Cut a bottle off the network",
		"Disconnects the bottle's containers from every network that is not internal and empties its egress routes; the gate refuses its requests from then on. restore undoes it."},
	budget.ActPause: {"Pause a bottle's agent containers (its sidecars run on)",
		"Pauses the bottle's agent containers; its sidecars keep running, so requests in flight are counted. restore undoes it."},
	budget.ActFreeze: {"Commit and stop a bottle",
		"Commits the agent container to bot-bottle-committed-SLUG:latest (bot-bottle's resume boots from it), then stops all of the bottle's containers."},
	budget.ActKill: {"Stop and remove a bottle",
		"Stops and removes all of the bottle's containers and its project's networks, saving nothing."},
	budget.ActRestore: {"Undo a cutoff or a pause",
		"Reconnects a cut-off bottle's containers with the aliases they had and puts its routes back, or unpauses a paused one. While its budget is still spent the gate keeps refusing."},
}

// asks are the actions that ask before they act when a person is at the
// terminal: they stop the agent's work, and kill cannot be undone.
var asks = map[budget.ActionKind]string{
	budget.ActFreeze: "Freeze bottle %s? Its agent container is committed, then all its containers are stopped.",
	budget.ActKill:   "Kill bottle %s? All its containers and networks are removed; nothing is saved.",
}

// actionFlags are the flags of an action command.
type actionFlags struct {
	*daemonFlags
	reason  string
	wait    bool
	timeout time.Duration
	yes     bool
}

// actionCommand is `bottlecap cutoff|pause|freeze|kill|restore SLUG`: an
// operator action, journaled and run by the daemon.
func (m *Main) actionCommand(kind budget.ActionKind) *cobra.Command {
	name := string(kind)
	help := actionHelp[kind]
	long := help.long + "\n\nThe daemon journals the action and carries it out in the background: without --wait the command " +
		"returns once the action is journaled (pending). With --wait it returns when the action is done (exit 0) " +
		"or failed (exit 1, saying why); after --timeout it gives up waiting with exit 3, and the daemon keeps trying."
	if _, ok := asks[kind]; ok {
		long += "\n\nWhen standard input is a terminal it asks first; --yes does not ask. " +
			"When standard input is not a terminal (a script, cron) it does not ask."
	}
	f := &actionFlags{}
	cmd := &cobra.Command{
		Use:               name + " SLUG",
		Short:             help.short,
		Long:              long,
		Example:           fmt.Sprintf("bottlecap %s dev-1 --reason \"runaway loop\" --wait", name),
		Args:              positional(1, 1),
		ValidArgsFunction: m.completeSlugs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return m.runAction(cmd, kind, args[0], f)
		},
	}
	f.daemonFlags = addDaemonFlags(cmd, true)
	fl := cmd.Flags()
	fl.StringVar(&f.reason, "reason", "", "the `text` the audit log keeps as the reason")
	fl.BoolVar(&f.wait, "wait", false, "return when the action is done (exit 0) or failed (exit 1)")
	fl.DurationVar(&f.timeout, "timeout", defaultWaitTimeout, "with --wait, give up waiting after this `long` (exit 3; the daemon keeps trying)")
	if _, ok := asks[kind]; ok {
		fl.BoolVarP(&f.yes, "yes", "y", false, "do not ask for confirmation at a terminal")
	}
	return cmd
}

// runAction checks the command line, asks when it must, starts the action
// and, with --wait, follows it to its outcome.
func (m *Main) runAction(cmd *cobra.Command, kind budget.ActionKind, slug string, f *actionFlags) error {
	if err := budget.ValidateSlug("bottle", slug); err != nil {
		return asUsage(err)
	}
	if cmd.Flags().Changed("timeout") && !f.wait {
		return usageErrorf("--timeout is how long --wait waits; give --wait too")
	}
	if f.timeout <= 0 {
		return usageErrorf("--timeout %s: want a positive duration, e.g. 2m", f.timeout)
	}
	if err := m.confirm(kind, slug, f.yes); err != nil {
		return err
	}
	ctx := cmd.Context()
	c := m.client(f.daemonFlags)
	a, err := c.Act(ctx, slug, api.ActionRequest{Action: string(kind), Reason: f.reason})
	if err != nil {
		return err
	}
	if !f.wait {
		return m.printAction(a, f.json, "(see: bottlecap actions)")
	}
	final, werr := waitForAction(ctx, c, a, f.timeout)
	if werr != nil && !f.json {
		return werr // the error line says it all
	}
	if err := m.printAction(final, f.json, ""); err != nil {
		return err
	}
	return werr
}

// printAction writes an action's state, or its JSON.
func (m *Main) printAction(a api.Action, asJSON bool, hint string) error {
	if asJSON {
		return writeJSON(m.Stdout, a)
	}
	line := fmt.Sprintf("%s %s: action %d %s", a.Kind, a.Bottle, a.ID, a.Status)
	if hint != "" {
		line += " " + hint
	}
	_, err := fmt.Fprintln(m.Stdout, line)
	return err
}

// errNotConfirmed is the answer "no" (or no answer) to the question.
var errNotConfirmed = errors.New("not confirmed; nothing was done")

// confirm asks a person at the terminal before a freeze or a kill; the
// default is no. Without a terminal (scripts) or with --yes it does not ask.
func (m *Main) confirm(kind budget.ActionKind, slug string, yes bool) error {
	question, ok := asks[kind]
	if !ok || yes || m.StdinIsTerminal == nil || !m.StdinIsTerminal() {
		return nil
	}
	fmt.Fprintf(m.Stderr, question+" [y/N] ", slug)
	answer, err := bufio.NewReader(m.Stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	switch strings.ToLower(strings.TrimSpace(answer)) {
	case "y", "yes":
		return nil
	}
	return errNotConfirmed
}

// waitForAction follows action a until it is done or failed, reading it
// again whenever the daemon sends an event about its bottle and at least
// every waitPoll. A daemon that restarts meanwhile resumes the action, so
// "cannot reach" only ends the wait at the timeout.
func waitForAction(ctx context.Context, c *client.Client, a api.Action, timeout time.Duration) (api.Action, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var changed <-chan api.Event
	if s, err := c.BottleEvents(ctx, a.Bottle); err == nil {
		defer s.Close()
		changed = s.C
	}
	tick := time.NewTicker(waitPoll)
	defer tick.Stop()
	for {
		cur, err := c.Action(ctx, a.ID)
		switch {
		case err == nil:
			a = cur
			if a.Status != string(budget.StatusPending) {
				return a, actionOutcome(a)
			}
		case ctx.Err() != nil:
		case !errors.Is(err, client.ErrDaemonDown) && !errors.Is(err, budget.ErrUnavailable):
			return a, err
		}
		select {
		case <-ctx.Done():
			return a, waitEnded(ctx, a, timeout)
		case _, open := <-changed:
			if !open {
				changed = nil // the stream ended (a restart): poll from now on
			}
		case <-tick.C:
		}
	}
}

// actionOutcome is nil for a done action and the reason for a failed one.
func actionOutcome(a api.Action) error {
	if a.Status == string(budget.StatusDone) {
		return nil
	}
	return fmt.Errorf("action %d failed after %d attempt(s): %s", a.ID, a.Attempts, a.LastError)
}

// waitEnded says why the wait ended before the action did: the timeout
// (exit 3), or the command was interrupted.
func waitEnded(ctx context.Context, a api.Action, timeout time.Duration) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return &exitError{exitTimeout, fmt.Errorf("action %d still %s after %s; the daemon keeps trying (see: bottlecap actions)", a.ID, a.Status, timeout)}
	}
	return fmt.Errorf("stopped waiting for action %d (%s); the daemon carries on with it (see: bottlecap actions)", a.ID, a.Status)
}

// actionsCommand is `bottlecap actions [--status S] [--json]`: the action
// journal, to follow what an action request became.
func (m *Main) actionsCommand() *cobra.Command {
	var status string
	var df *daemonFlags
	cmd := &cobra.Command{
		Use:   "actions",
		Short: "The enforcement action journal",
		Long:  "Every action the daemon journaled, by budgets, rate guards and operators: pending, done or failed, with its attempts and last error.",
		Args:  positional(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch status {
			case "", "pending", "done", "failed":
			default:
				return usageErrorf("--status %q: want pending, done or failed", status)
			}
			as, err := m.client(df).Actions(cmd.Context(), status)
			if err != nil {
				return err
			}
			return writeReply(m, df, nonNil(as), printActions)
		},
	}
	df = addDaemonFlags(cmd, true)
	cmd.Flags().StringVar(&status, "status", "", "only actions in this `status`: pending, done or failed")
	return cmd
}

// printActions writes the action journal as a table.
func printActions(w io.Writer, as []api.Action) error {
	t := newTable(w, "ID", "BOTTLE", "ACTION", "STATUS", "BY", "ATTEMPTS", "UPDATED", "REASON")
	for _, a := range as {
		by := "budget"
		if a.Operator {
			by = "operator"
		}
		status := a.Status
		if a.LastError != "" {
			status += ": " + a.LastError
		}
		t.row(fmt.Sprint(a.ID), a.Bottle, a.Kind, status, by, fmt.Sprint(a.Attempts), formatTime(a.UpdatedAt), orDash(a.Reason))
	}
	return t.flush()
}

// nonNil makes an absent list print as [] rather than null in --json.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// completeSlugs completes a SLUG argument with the bottles the daemon
// knows; a daemon that does not answer at once completes nothing.
func (m *Main) completeSlugs(cmd *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	socket, _ := cmd.Flags().GetString("socket")
	c := client.New(m.socketPath(socket), client.WithRetry(0))
	defer c.Close()
	ctx, cancel := context.WithTimeout(cmd.Context(), 2*time.Second)
	defer cancel()
	bs, err := c.Bottles(ctx)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	out := make([]cobra.Completion, 0, len(bs))
	for _, b := range bs {
		out = append(out, cobra.CompletionWithDesc(b.Slug, string(b.State)))
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}
