package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/client"
)

// errAuditBroken is the exit-1 answer of `audit verify` on a broken chain.
var errAuditBroken = errors.New("the audit log's hash chain is broken")

// auditCommand is `bottlecap audit [--json] [--bottle B] [--limit N]`, with
// `bottlecap audit verify` under it.
func (m *Main) auditCommand() *cobra.Command {
	var q client.AuditQuery
	var df *daemonFlags
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "The audit log, newest first",
		Long: "The append-only audit log: every warning, crossing, action and change of budget, newest first. " +
			"Each entry carries the SHA-256 of the one before it; audit verify checks the chain.",
		Example: "bottlecap audit --bottle dev-1 --limit 20\nbottlecap audit verify",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if q.Limit < 0 {
				return usageErrorf("--limit %d: want 0 or more", q.Limit)
			}
			return m.runAudit(cmd.Context(), df, q)
		},
	}
	df = addDaemonFlags(cmd, true)
	cmd.Flags().StringVar(&q.Bottle, "bottle", "", "only entries about this bottle `slug`")
	cmd.Flags().IntVar(&q.Limit, "limit", 0, "at most `N` entries, newest first (0: the daemon's default)")
	cmd.AddCommand(m.auditVerifyCommand())
	return cmd
}

func (m *Main) runAudit(ctx context.Context, df *daemonFlags, q client.AuditQuery) error {
	es, err := m.client(df).Audit(ctx, q)
	if err != nil {
		return err
	}
	return writeReply(m, df, nonNil(es), printAudit)
}

// printAudit writes a row per audit entry.
func printAudit(w io.Writer, es []api.AuditEntry) error {
	t := newTable(w, "SEQ", "TIME", "KIND", "BOTTLE", "DETAIL")
	for _, e := range es {
		t.row(fmt.Sprint(e.Seq), formatTime(e.TS), e.Kind, orDash(e.Bottle), e.Detail)
	}
	return t.flush()
}

// auditVerifyCommand is `bottlecap audit verify [--json]`: exit 0 when the
// hash chain holds, 1 when it is broken.
func (m *Main) auditVerifyCommand() *cobra.Command {
	var df *daemonFlags
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check the audit log's hash chain (exit 1 when broken)",
		Args:  positional(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, err := m.client(df).VerifyAudit(cmd.Context())
			if err != nil {
				return err
			}
			if df.json {
				if err := writeJSON(m.Stdout, v); err != nil {
					return err
				}
			} else if v.OK {
				fmt.Fprintf(m.Stdout, "audit log intact: %d entries, hash chain verified\n", v.Entries)
			}
			if !v.OK {
				return fmt.Errorf("%w after %d good entries: %s", errAuditBroken, v.Entries, v.Error)
			}
			return nil
		},
	}
	df = addDaemonFlags(cmd, true)
	return cmd
}
