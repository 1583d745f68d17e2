package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
)

// reportFlags are the flags of `bottlecap report`.
type reportFlags struct {
	r          api.Report
	incomplete bool
	raw        string
	tokens     bool // some token count was given
}

// reportCommand is `bottlecap report [flags]`: send one usage report, as
// a script or a sidecar without Go would, and print the daemon's reply.
func (m *Main) reportCommand() *cobra.Command {
	var df *daemonFlags
	var rf *reportFlags
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Send one usage report (for scripts and sidecars)",
		Long: "Sends one usage report to the daemon, as a sidecar would, and prints its reply: accepted or duplicate, " +
			"and the verdicts it touched. Give the token counts, or --raw with the provider's response body for the daemon to read them off. " +
			"A report's --id makes it idempotent: sent twice, it is counted once.",
		Example: "bottlecap report --id msg_01 --bottle dev-1 --provider claude --input 656 --output 74\n" +
			"bottlecap report --id resp_9 --bottle dev-1 --raw response.json",
		Args: positional(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := rf.check(); err != nil {
				return asUsage(err)
			}
			return m.runReport(cmd.Context(), df, rf)
		},
	}
	df = addDaemonFlags(cmd, true)
	rf = reportFlagSet(cmd.Flags())
	return cmd
}

func (m *Main) runReport(ctx context.Context, df *daemonFlags, rf *reportFlags) error {
	if err := m.readRaw(rf); err != nil {
		return err
	}
	if rf.incomplete {
		complete := false
		rf.r.Complete = &complete
	}
	reply, err := m.client(df).Ingest(ctx, []api.Report{rf.r})
	if err != nil {
		return err
	}
	if df.json {
		return writeJSON(m.Stdout, reply)
	}
	return m.printIngest(rf.r.ID, reply)
}

// reportFlagSet declares the report's fields as flags.
func reportFlagSet(fs *pflag.FlagSet) *reportFlags {
	rf := &reportFlags{}
	r := &rf.r
	fs.StringVar(&r.ID, "id", "", "the upstream response `id` (required: it makes the report idempotent)")
	fs.StringVar(&r.Bottle, "bottle", "", "the bottle `slug` (required)")
	fs.StringVar(&r.Agent, "agent", "", "the agent `name` (default: the bottle's agent)")
	fs.StringVar(&r.Provider, "provider", "", "the `provider` (default: from --host)")
	fs.StringVar(&r.Host, "host", "", "the upstream `host`, to attribute the provider")
	fs.StringVar(&r.Model, "model", "", "the `model`")
	for _, t := range []struct {
		name string
		into *int64
	}{
		{"input", &r.Input}, {"output", &r.Output}, {"cache-read", &r.CacheRead},
		{"cache-write", &r.CacheWrite}, {"reasoning", &r.Reasoning},
	} {
		fs.Func(t.name, t.name+" tokens (`N`: 656, 1.5k, 2M)", func(s string) error {
			n, err := budget.ParseTokens(s)
			*t.into, rf.tokens = n, true
			return err
		})
	}
	fs.BoolVar(&rf.incomplete, "incomplete", false, "the stream ended before its final usage")
	fs.Func("ts", "when the response finished (`RFC3339`; default: now)", func(s string) error {
		t, err := time.Parse(time.RFC3339Nano, s)
		r.TS = t
		return err
	})
	fs.StringVar(&rf.raw, "raw", "", "send this `file`'s provider response body (JSON or SSE; - for stdin) for the daemon to normalise")
	fs.StringVar(&r.Format, "format", "", "the --raw body's `format`: auto, openai-chat, openai-responses, anthropic, gemini")
	return rf
}

// check rejects reports the daemon would refuse, so the mistake is a usage
// error that says which flag to fix.
func (rf *reportFlags) check() error {
	switch {
	case rf.r.ID == "":
		return fmt.Errorf("--id is required (the upstream response id; a repeated id is counted once)")
	case rf.r.Bottle == "":
		return fmt.Errorf("--bottle is required")
	case rf.raw != "" && rf.tokens:
		return fmt.Errorf("give either --raw or token counts (--input, --output, ...), not both")
	case rf.raw == "" && rf.r.Format != "":
		return fmt.Errorf("--format describes a --raw body; give --raw FILE too")
	}
	if rf.r.TS.IsZero() {
		rf.r.TS = time.Now().UTC()
	}
	return budget.ValidateSlug("--bottle", rf.r.Bottle)
}

// readRaw loads the --raw body: JSON stays a JSON value, anything else (an
// SSE stream) is sent as a JSON string.
func (m *Main) readRaw(rf *reportFlags) error {
	if rf.raw == "" {
		return nil
	}
	var data []byte
	var err error
	if rf.raw == "-" {
		data, err = io.ReadAll(m.Stdin)
	} else {
		data, err = os.ReadFile(rf.raw)
	}
	if err != nil {
		return fmt.Errorf("read --raw: %w", err)
	}
	if t := bytes.TrimSpace(data); json.Valid(t) && len(t) > 0 {
		rf.r.Raw = json.RawMessage(t)
	} else if rf.r.Raw, err = json.Marshal(string(data)); err != nil {
		return fmt.Errorf("encode --raw: %w", err)
	}
	if rf.r.Format == "" {
		rf.r.Format = "auto"
	}
	return nil
}

// printIngest writes the ingest reply: accepted or duplicate, and the
// verdicts the report touched.
func (m *Main) printIngest(id string, reply api.IngestReply) error {
	if reply.Duplicates > 0 && reply.Accepted == 0 {
		fmt.Fprintf(m.Stdout, "report %s: duplicate, already counted\n", id)
	} else {
		fmt.Fprintf(m.Stdout, "report %s: accepted\n", id)
	}
	if len(reply.Verdicts) == 0 {
		return nil
	}
	t := newTable(m.Stdout, "BOTTLE", "AGENT", "PROVIDER", "SCOPE", "USED", "LIMIT", "LEFT", "%", "ALLOWED")
	for _, v := range reply.Verdicts {
		row := []string{v.Bottle, orDash(v.Agent), v.Provider, scopeName(v.Scope), formatTokens(v.Used)}
		t.row(append(append(row, limitCells(v)...), allowedCell(v))...)
	}
	return t.flush()
}
