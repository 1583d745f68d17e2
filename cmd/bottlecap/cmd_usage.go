package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/meter/usage"
)

// usageJSON is the stable output of `bottlecap usage parse`: the normalised
// counts of SPEC section 4 and what identifies the response.
type usageJSON struct {
	Format     usage.Format `json:"format"`
	Input      int64        `json:"input_tokens"`
	CacheRead  int64        `json:"cache_read_tokens"`
	CacheWrite int64        `json:"cache_write_tokens"`
	Output     int64        `json:"output_tokens"`
	Reasoning  int64        `json:"reasoning_tokens"`
	Total      int64        `json:"total_tokens"`
	Complete   bool         `json:"complete"`
	Model      string       `json:"model"`
	ID         string       `json:"id"`
}

// runUsage dispatches `bottlecap usage parse`.
func (m *Main) runUsage(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "parse" {
		fmt.Fprintln(m.Stderr, "usage: bottlecap usage parse [--format F] FILE   (FILE - reads stdin)")
		return errUsage
	}
	return m.runUsageParse(ctx, args[1:])
}

// runUsageParse prints the normalised usage of one recorded response body or
// stream, so an operator can check what the meter would report for it.
func (m *Main) runUsageParse(_ context.Context, args []string) error {
	fs := m.flags("usage parse")
	format := fs.String("format", "auto", "the body's `format`: auto, openai-chat, openai-responses, anthropic or gemini")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: bottlecap usage parse [--format F] FILE   (FILE - reads stdin)")
		fs.PrintDefaults()
	}
	pos, err := m.parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	f, err := usage.ParseFormat(*format)
	if err != nil {
		return m.usageError(fs, "--format: %v", err)
	}
	res, err := m.parseUsageFile(f, pos[0])
	if err != nil {
		return err
	}
	enc := json.NewEncoder(m.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(toUsageJSON(res))
}

// parseUsageFile reads name (or stdin for "-") and parses it strictly: a
// body without usage is an error that says so.
func (m *Main) parseUsageFile(f usage.Format, name string) (usage.Result, error) {
	var r io.Reader = m.Stdin
	if name != "-" {
		file, err := os.Open(name)
		if err != nil {
			return usage.Result{}, err
		}
		defer file.Close()
		r = file
	}
	res, err := usage.ParseAll(f, "", r)
	if errors.Is(err, budget.ErrInvalid) {
		return res, fmt.Errorf("%s: %w", displayName(name), err)
	}
	return res, err
}

// displayName names the input in messages.
func displayName(name string) string {
	if name == "-" {
		return "stdin"
	}
	return name
}

func toUsageJSON(r usage.Result) usageJSON {
	u := r.Usage
	return usageJSON{
		Format: r.Format, Input: u.Input, CacheRead: u.CacheRead, CacheWrite: u.CacheWrite,
		Output: u.Output, Reasoning: u.Reasoning, Total: u.Total(),
		Complete: r.Complete, Model: r.Model, ID: r.ID,
	}
}
