package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
	"github.com/spf13/pflag"
)

// cliDocs is where the command line's reference lives in the repository
// (make docs writes it; a test fails when it is stale).
const cliDocs = "docs/cli.md"

// genDocsCommand is the hidden `bottlecap gen-docs --man DIR --markdown
// FILE`: the man pages (one per command, bottlecap.1 and
// bottlecap-SUBCOMMAND.1) and docs/cli.md, both from the command tree.
func (m *Main) genDocsCommand() *cobra.Command {
	var manDir, markdown string
	cmd := &cobra.Command{
		Use:    "gen-docs",
		Short:  "Write the man pages and the markdown reference of the command line",
		Hidden: true,
		Args:   positional(0, 0),
		RunE: func(*cobra.Command, []string) error {
			if manDir == "" && markdown == "" {
				return usageErrorf("give --man DIR, --markdown FILE or both")
			}
			if manDir != "" {
				if err := writeManPages(manDir); err != nil {
					return err
				}
			}
			if markdown != "" {
				return m.writeMarkdownFile(markdown)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&manDir, "man", "", "write the man pages (section 1) into this `directory`")
	cmd.Flags().StringVar(&markdown, "markdown", "", "write the markdown reference into this `file` (- for stdout)")
	return cmd
}

// docsRoot is the command tree as the docs show it, built from a Main with
// an empty environment so that no default comes from the environment of
// whoever generates them ($BOTTLECAP_BOTTLE, say).
func docsRoot() *cobra.Command {
	m := &Main{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: io.Discard, Getenv: func(string) string { return "" }}
	return m.newRoot()
}

// writeManPages writes a man page per command into dir. Their date is
// $SOURCE_DATE_EPOCH when set (reproducible builds), else today.
func writeManPages(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	header := &doc.GenManHeader{Title: "BOTTLECAP", Section: "1", Source: "bottlecap " + currentBuild().Version, Manual: "bottlecap manual"}
	if err := doc.GenManTree(docsRoot(), header, dir); err != nil {
		return fmt.Errorf("man pages: %w", err)
	}
	return nil
}

// writeMarkdownFile writes the markdown reference to path (- for stdout).
func (m *Main) writeMarkdownFile(path string) error {
	var b bytes.Buffer
	writeMarkdown(&b, docsRoot())
	if path == "-" {
		_, err := m.Stdout.Write(b.Bytes())
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// writeMarkdown writes the reference of every command under root: one
// file, a table of contents, then for each command its synopsis, what it
// does, examples and flags.
func writeMarkdown(w io.Writer, root *cobra.Command) {
	cmds := documented(root)
	fmt.Fprintf(w, "# The bottlecap command line\n\n")
	fmt.Fprintf(w, "<!-- Generated from the command tree by `make docs` (bottlecap gen-docs --markdown %s); do not edit. "+
		"A test fails when this file is stale. -->\n\n", cliDocs)
	fmt.Fprintf(w, "Every command also answers `--help` (or `bottlecap help COMMAND`), and `man bottlecap` "+
		"once installed (`make install` puts a page per command in share/man/man1).\n\n")
	for _, c := range cmds {
		fmt.Fprintf(w, "- [`%s`](#%s) — %s\n", c.CommandPath(), anchor(c.CommandPath()), c.Short)
	}
	for _, c := range cmds {
		writeCommand(w, c)
	}
}

// documented is root and every available command below it, depth first.
func documented(c *cobra.Command) []*cobra.Command {
	out := []*cobra.Command{c}
	for _, sub := range c.Commands() {
		if sub.IsAvailableCommand() && !sub.IsAdditionalHelpTopicCommand() {
			out = append(out, documented(sub)...)
		}
	}
	return out
}

// writeCommand writes one command's section.
func writeCommand(w io.Writer, c *cobra.Command) {
	fmt.Fprintf(w, "\n## %s\n\n%s\n\n", c.CommandPath(), c.Short)
	if c.Long != "" {
		fmt.Fprintf(w, "%s\n\n", strings.TrimSpace(c.Long))
	}
	fmt.Fprintf(w, "```\n%s\n```\n", synopsis(c))
	if c.HasAvailableSubCommands() {
		fmt.Fprintf(w, "\nCommands:\n\n")
		for _, sub := range c.Commands() {
			if sub.IsAvailableCommand() {
				fmt.Fprintf(w, "- [`%s`](#%s) — %s\n", sub.Name(), anchor(sub.CommandPath()), sub.Short)
			}
		}
	}
	if c.Example != "" {
		fmt.Fprintf(w, "\nExamples:\n\n```sh\n%s\n```\n", strings.TrimSpace(c.Example))
	}
	if fs := c.NonInheritedFlags(); fs.HasAvailableFlags() {
		fmt.Fprintf(w, "\n| Flag | Meaning |\n| --- | --- |\n")
		fs.VisitAll(func(f *pflag.Flag) {
			if !f.Hidden {
				fmt.Fprintf(w, "| %s | %s |\n", flagCell(f), cellText(flagMeaning(f)))
			}
		})
	}
}

// flagCell is the flag as typed: `-y`, `--yes`, or `--socket path`.
func flagCell(f *pflag.Flag) string {
	name, _ := pflag.UnquoteUsage(f)
	cell := "`--" + f.Name
	if name != "" && f.Value.Type() != "bool" {
		cell += " " + name
	}
	cell += "`"
	if f.Shorthand != "" {
		cell = "`-" + f.Shorthand + "`, " + cell
	}
	return cell
}

// flagMeaning is the flag's usage with its default, when it has one.
func flagMeaning(f *pflag.Flag) string {
	_, usage := pflag.UnquoteUsage(f)
	switch f.DefValue {
	case "", "false", "0", "0s", "[]":
		return usage
	}
	return fmt.Sprintf("%s (default: %s)", usage, f.DefValue)
}

// cellText keeps text inside one markdown table cell.
func cellText(s string) string {
	return strings.NewReplacer("|", "\\|", "\n", " ").Replace(s)
}

// synopsis is the command's use line, with "COMMAND" for a group.
func synopsis(c *cobra.Command) string {
	if c.Annotations[onlyGroup] != "" {
		return c.CommandPath() + " COMMAND"
	}
	return c.UseLine()
}

// anchor is the id GitHub gives a heading: lower case, spaces as dashes.
func anchor(heading string) string {
	return strings.ReplaceAll(strings.ToLower(heading), " ", "-")
}
