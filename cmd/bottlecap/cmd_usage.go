package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

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

// usageCommand is `bottlecap usage parse`.
func (m *Main) usageCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "usage",
		Short: "Read the usage off a provider's response",
	}
	cmd.AddCommand(m.usageParseCommand())
	return cmd
}

// usageParseCommand prints the normalised usage of one recorded response
// body or stream, so an operator can check what the meter would report
// for it. Its output is JSON, with or without --json.
func (m *Main) usageParseCommand() *cobra.Command {
	var format string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "parse FILE",
		Short: "Print the normalised usage of a response body or stream (FILE - reads stdin)",
		Long: "Reads one provider response (JSON, or a server-sent event stream) and prints, as JSON, the usage the meter " +
			"would report for it: input, cache read and write, output and reasoning tokens, whether the stream completed, " +
			"the model and the response id. The output is always JSON; --json is accepted for scripts that pass it to every command.",
		Example: "bottlecap usage parse response.json\ncurl … | bottlecap usage parse --format anthropic -",
		Args:    positional(1, 1),
		RunE: func(_ *cobra.Command, args []string) error {
			f, err := usage.ParseFormat(format)
			if err != nil {
				return usageErrorf("--format: %v", err)
			}
			res, err := m.parseUsageFile(f, args[0])
			if err != nil {
				return err
			}
			return writeJSON(m.Stdout, toUsageJSON(res))
		},
	}
	cmd.Flags().StringVar(&format, "format", "auto", "the body's `format`: auto, openai-chat, openai-responses, anthropic or gemini")
	addJSONFlag(cmd, &asJSON)
	return cmd
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
