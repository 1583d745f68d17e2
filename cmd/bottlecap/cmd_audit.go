package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/bot-bottle/bottlecap/client"
)

// errAuditBroken is the exit-1 answer of `audit verify` on a broken chain.
var errAuditBroken = errors.New("the audit log's hash chain is broken")

// runAudit implements `bottlecap audit [--json] [--bottle B] [--limit N]`
// and `bottlecap audit verify`.
func (m *Main) runAudit(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == "verify" {
		return m.runAuditVerify(ctx, args[1:])
	}
	fs, df := m.daemonFlagSet("audit", "audit [--json] [--bottle B] [--limit N] [--socket PATH]  |  audit verify", true)
	var q client.AuditQuery
	fs.StringVar(&q.Bottle, "bottle", "", "only entries about this bottle `slug`")
	fs.IntVar(&q.Limit, "limit", 0, "at most `N` entries, newest first (0: the daemon's default)")
	if _, err := m.parseArgs(fs, args, 0, 0); err != nil {
		return err
	}
	if q.Limit < 0 {
		return m.usageError(fs, "--limit %d: want 0 or more", q.Limit)
	}
	es, err := m.client(df).Audit(ctx, q)
	if err != nil {
		return err
	}
	if df.json {
		return writeJSON(m.Stdout, nonNil(es))
	}
	t := newTable(m.Stdout, "SEQ", "TIME", "KIND", "BOTTLE", "DETAIL")
	for _, e := range es {
		t.row(fmt.Sprint(e.Seq), formatTime(e.TS), e.Kind, orDash(e.Bottle), e.Detail)
	}
	return t.flush()
}

// runAuditVerify implements `bottlecap audit verify [--json]`: exit 0 when
// the hash chain holds, 1 when it is broken.
func (m *Main) runAuditVerify(ctx context.Context, args []string) error {
	fs, df := m.daemonFlagSet("audit verify", "audit verify [--json] [--socket PATH]", true)
	if _, err := m.parseArgs(fs, args, 0, 0); err != nil {
		return err
	}
	v, err := m.client(df).VerifyAudit(ctx)
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
}
