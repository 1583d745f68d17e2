package main

import (
	"context"
	"fmt"
	"io"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
)

// actionCommand is `bottlecap cutoff|pause|freeze|kill|restore SLUG [--reason R]`:
// an operator action, journaled and run by the daemon.
func actionCommand(kind budget.ActionKind) func(*Main, context.Context, []string) error {
	return func(m *Main, ctx context.Context, args []string) error {
		name := string(kind)
		fs, df := m.daemonFlagSet(name, name+" SLUG [--reason R] [--json] [--socket PATH]", true)
		reason := fs.String("reason", "", "why, for the audit log")
		pos, err := m.parseArgs(fs, args, 1, 1)
		if err != nil {
			return err
		}
		if err := budget.ValidateSlug("bottle", pos[0]); err != nil {
			return m.usageError(fs, "%v", err)
		}
		a, err := m.client(df).Act(ctx, pos[0], api.ActionRequest{Action: name, Reason: *reason})
		if err != nil {
			return err
		}
		if df.json {
			return writeJSON(m.Stdout, a)
		}
		fmt.Fprintf(m.Stdout, "%s %s: action %d %s (see: bottlecap actions)\n", name, a.Bottle, a.ID, a.Status)
		return nil
	}
}

// runActions implements `bottlecap actions [--status S] [--json]`: the
// action journal, to follow what an action request became.
func (m *Main) runActions(ctx context.Context, args []string) error {
	fs, df := m.daemonFlagSet("actions", "actions [--status pending|done|failed] [--json] [--socket PATH]", true)
	status := fs.String("status", "", "only actions in this `status`: pending, done or failed")
	if _, err := m.parseArgs(fs, args, 0, 0); err != nil {
		return err
	}
	switch *status {
	case "", "pending", "done", "failed":
	default:
		return m.usageError(fs, "--status %q: want pending, done or failed", *status)
	}
	as, err := m.client(df).Actions(ctx, *status)
	if err != nil {
		return err
	}
	if df.json {
		return writeJSON(m.Stdout, nonNil(as))
	}
	return printActions(m.Stdout, as)
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
