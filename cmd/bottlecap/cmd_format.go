package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/tui"
)

// tokenUnits are the display units, as ParseTokens reads them back.
var tokenUnits = []struct {
	size   float64
	suffix string
}{{1e3, "k"}, {1e6, "M"}, {1e9, "G"}}

// formatTokens writes a token count for people: 412, 412k, 1M, 1.5M,
// 12.3M: three significant digits at most, in units ParseTokens accepts.
func formatTokens(n int64) string {
	if n < 0 {
		return "-" + formatTokens(-n)
	}
	if n < 1000 {
		return strconv.FormatInt(n, 10)
	}
	var s string
	for _, u := range tokenUnits {
		v := float64(n) / u.size
		s = strconv.FormatFloat(v, 'f', decimals(v), 64)
		if strings.Contains(s, ".") {
			s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
		}
		if f, _ := strconv.ParseFloat(s, 64); f < 1000 || u.suffix == "G" {
			return s + u.suffix
		}
	}
	return s + "G"
}

// decimals keeps three significant digits.
func decimals(v float64) int {
	switch {
	case v < 10:
		return 2
	case v < 100:
		return 1
	}
	return 0
}

// exactTokens is formatTokens when that loses nothing, else the digits: a
// limit someone set must be shown as set.
func exactTokens(n int64) string {
	s := formatTokens(n)
	if back, err := budget.ParseTokens(s); err == nil && back == n {
		return s
	}
	return strconv.FormatInt(n, 10)
}

// percent is used as a whole percentage of limit, or "-" without a limit.
func percent(used, limit int64) string {
	if limit <= 0 {
		return "-"
	}
	return fmt.Sprintf("%d%%", used*100/limit)
}

// scopeName writes a scope as `budget set` takes it: global,
// bottle/dev-1, agent/dev-1/reviewer; parent/<slug> for an ancestor.
func scopeName(s budget.Scope) string {
	if s.Kind == budget.ScopeGlobal || s.ID == "" || s.ID == "-" {
		return string(s.Kind)
	}
	return string(s.Kind) + "/" + s.ID
}

// limitCells are the LIMIT, LEFT and % cells of a verdict.
func limitCells(v budget.Verdict) []string {
	if v.Unlimited {
		return []string{"-", "-", "-"}
	}
	return []string{formatTokens(v.Limit) + windowSuffix(v.Window), formatTokens(v.Remaining), percent(v.Used, v.Limit)}
}

// windowSuffix is "/day" for a windowed limit, "" for a lifetime one.
func windowSuffix(window string) string {
	if window == "" || window == "life" {
		return ""
	}
	return "/" + window
}

// anyWindowed reports whether any of the limits has a window.
func anyWindowed(limits []budget.LimitUse) bool {
	for _, l := range limits {
		if l.Window != "life" {
			return true
		}
	}
	return false
}

// printLimitUses writes one row per limit with its window's usage and
// when it resets: the LIMITS table of bottle show and status, printed
// when a limit has a window (a lifetime limit is all in the table above).
func printLimitUses(w io.Writer, limits []budget.LimitUse) error {
	if !anyWindowed(limits) {
		return nil
	}
	fmt.Fprintln(w)
	t := newTable(w, "SCOPE", "PROVIDER", "LIMIT", "WINDOW", "USED", "LEFT", "%", "RESETS")
	for _, l := range limits {
		resets := "-"
		if !l.ResetsAt.IsZero() {
			resets = formatTime(l.ResetsAt)
		} else if l.Window != "life" {
			resets = "rolling"
		}
		t.row(scopeName(l.Scope), l.Provider, formatTokens(l.Limit), l.Window, formatTokens(l.Used), formatTokens(l.Remaining), percent(l.Used, l.Limit), resets)
	}
	return t.flush()
}

// allowedCell is "yes", or "no" with the gate's reason.
func allowedCell(v budget.Verdict) string {
	if v.Allowed {
		return "yes"
	}
	if v.Reason != "" {
		return "no: " + v.Reason
	}
	return "no"
}

// table writes aligned columns; rows are tab-separated cells.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, header ...string) *table {
	t := &table{tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	t.row(header...)
	return t
}

// row writes one line; control characters in the cells (a peer's model,
// an operator's reason) are dropped so they cannot paint the terminal.
func (t *table) row(cells ...string) {
	clean := make([]string, len(cells))
	for i, c := range cells {
		clean[i] = tui.Printable(c)
	}
	fmt.Fprintln(t.tw, strings.Join(clean, "\t"))
}

func (t *table) flush() error { return t.tw.Flush() }

// writeReply writes the daemon's answer v: as JSON with --json, for a
// script that wants the API's own shape, else as human lays it out for a
// person.
func writeReply[T any](m *Main, df *daemonFlags, v T, human func(io.Writer, T) error) error {
	if df.json {
		return writeJSON(m.Stdout, v)
	}
	return human(m.Stdout, v)
}

// writeJSON prints v as indented JSON: the --json output, stable because it
// is the API's own types.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// formatTime writes a timestamp in UTC, to the second.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// formatLimits writes limits as `--budget` takes them:
// claude=5M/day+50M/month,codex=500k.
func formatLimits(l budget.Limits) string {
	if len(l) == 0 {
		return "-"
	}
	keys := sortedKeys(l)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + exactLimits(l[k])
	}
	return strings.Join(parts, ",")
}

// exactLimits writes a provider's limits as the command line takes them,
// each amount short where that is exact: 5M/day+50M/month.
func exactLimits(set budget.LimitSet) string {
	parts := make([]string, len(set))
	for i, l := range set {
		parts[i] = exactTokens(l.Tokens)
		if l.Window != budget.LifeWindow {
			parts[i] += "/" + l.Window.String()
		}
	}
	return strings.Join(parts, "+")
}

// sortedKeys returns a map's keys in order, for stable output.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// orDash is s, or "-" for an empty cell.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
