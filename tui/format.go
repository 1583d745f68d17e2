package tui

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/charmbracelet/x/ansi"

	"github.com/bot-bottle/bottlecap/budget"
)

// Tokens formats a token count the way settings write limits: 950, 412k,
// 1M, 1.5M, 2.25G. Operators compare it with their settings at a glance.
func Tokens(n int64) string {
	neg := ""
	if n < 0 {
		neg, n = "-", -n
	}
	units := []struct {
		div    float64
		suffix string
	}{{1e9, "G"}, {1e6, "M"}, {1e3, "k"}}
	for _, u := range units {
		if float64(n) >= u.div {
			return neg + trimFloat(float64(n)/u.div) + u.suffix
		}
	}
	return neg + strconv.FormatInt(n, 10)
}

// trimFloat prints v with up to three significant digits, no trailing zeros.
func trimFloat(v float64) string {
	prec := 2
	switch {
	case v >= 100:
		prec = 0
	case v >= 10:
		prec = 1
	}
	s := strconv.FormatFloat(v, 'f', prec, 64)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

// usedOfLimit is "412k / 1M", or "412k / —" when nothing limits.
func usedOfLimit(used, limit int64, unlimited bool) string {
	if unlimited {
		return Tokens(used) + " / —"
	}
	return Tokens(used) + " / " + Tokens(limit)
}

// windowTag marks a windowed limit after its scope or amount: "·day",
// "·5h"; nothing for a lifetime one, which reads as it always did.
func windowTag(window string) string {
	if window == "" || window == "life" {
		return ""
	}
	return "·" + window
}

// shortWindowTag is windowTag in as few cells as reads: "·d", "·wk",
// "·mo"; a rolling span ("·5h") is short already.
func shortWindowTag(window string) string {
	switch window {
	case "day":
		return "·d"
	case "week":
		return "·wk"
	case "month":
		return "·mo"
	}
	return windowTag(window)
}

// resetsPhrase says when a calendar window resets, in the dashboard's
// clock format, or nothing.
func resetsPhrase(at time.Time) string {
	if at.IsZero() {
		return ""
	}
	return "resets " + at.Format("01-02 15:04")
}

// percent is "82%", or "—" without a limit.
func percent(p float64, unlimited bool) string {
	if unlimited {
		return "—"
	}
	return fmt.Sprintf("%.0f%%", math.Floor(p))
}

// burnRate is tokens per minute: "12k/m", "0/m".
func burnRate(perMin float64) string {
	if perMin <= 0 {
		return "—"
	}
	return Tokens(int64(math.Round(perMin))) + "/m"
}

// eta is the time to exhaustion: "now" when exhausted, "—" when unknown or
// never, else the two largest units ("3h12m", "4m", "2d3h").
func eta(d time.Duration) string {
	switch {
	case d < 0:
		return "—"
	case d < time.Minute:
		if d == 0 {
			return "now"
		}
		return "<1m"
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
	case d < 100*24*time.Hour:
		return fmt.Sprintf("%dd%dh", int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour))
	}
	return ">99d"
}

// bar is a usage bar of width cells that still reads without colour:
// filled cells are '█', empty '░', and a bar over its limit ends in '!'.
func bar(p float64, width int, unlimited bool) string {
	if width <= 0 {
		return ""
	}
	if unlimited {
		return strings.Repeat("·", width)
	}
	filled := int(math.Round(p / 100 * float64(width)))
	filled = max(0, min(filled, width))
	s := strings.Repeat("█", filled) + strings.Repeat("░", width-filled)
	if p >= 100 {
		s = strings.Repeat("█", width-1) + "!"
	}
	return s
}

// sparkline draws a series with the eight block heights.
func sparkline(series []int64) string {
	const ticks = "▁▂▃▄▅▆▇█"
	var top int64
	for _, v := range series {
		top = max(top, v)
	}
	var b strings.Builder
	for _, v := range series {
		switch {
		case v == 0:
			b.WriteRune(' ')
		case top == 0:
			b.WriteRune('▁')
		default:
			i := int(float64(v) / float64(top) * 7)
			b.WriteRune([]rune(ticks)[min(i, 7)])
		}
	}
	return b.String()
}

// scopeLabel names the governing scope in a few cells: its kind, and for
// a parent or agent scope which one.
func scopeLabel(s budget.Scope) string {
	if id := scopeID(s); id != "" {
		return scopeKindLabel(s) + " " + id
	}
	return scopeKindLabel(s)
}

// scopeKindLabel is the scope's kind alone, for a cell too narrow for the
// rest of its label.
func scopeKindLabel(s budget.Scope) string {
	if s.Kind == "" {
		return "none"
	}
	return string(s.Kind)
}

// scopeID is what the label names besides the kind: the ancestor of a
// parent scope, the agent of an agent scope; nothing for the others (the
// bottle scope is the row's own bottle).
func scopeID(s budget.Scope) string {
	switch s.Kind {
	case budget.ScopeParent:
		return s.ID
	case budget.ScopeAgent:
		_, agent := splitAgentID(s.ID)
		return agent
	}
	return ""
}

// cutMiddle fits s in width cells by cutting its middle out, keeping the
// end whole where it can: bot-bottle slugs (implementer-b4d07) are told
// apart by the part after their last '-', so "impl…er-b4d07", never
// "implementer-b…".
func cutMiddle(s string, width int) string {
	sw := lipWidth(s)
	if sw <= width {
		return s
	}
	if width <= 1 {
		return strings.Repeat("…", max(width, 0))
	}
	keep := width - 1
	suffix := 0
	if i := strings.LastIndexByte(s, '-'); i >= 0 {
		suffix = lipWidth(s[i:])
	}
	tail := max(keep*2/3, min(suffix, keep))
	head := keep - tail
	return ansi.Truncate(s, head, "") + "…" + ansi.TruncateLeft(s, sw-tail, "")
}

// stateMarks gives every state a marker and a word, so a row reads the same
// on a terminal without colour.
var stateMarks = map[budget.State]string{
	budget.Active:  "● active",
	budget.Warned:  "▲ warned",
	budget.CutOff:  "■ cut off",
	budget.Paused:  "‖ paused",
	budget.Frozen:  "❄ frozen",
	budget.Killed:  "✖ killed",
	budget.Pending: "◷ pending",
}

// stateText is the marker and word of a state.
func stateText(s budget.State) string {
	if t, ok := stateMarks[s]; ok {
		return t
	}
	return "? " + string(s)
}

// fit truncates s to width cells with an ellipsis and pads it to width.
func fit(s string, width int) string {
	if width <= 0 {
		return ""
	}
	s = ansi.Truncate(s, width, "…")
	if w := ansi.StringWidth(s); w < width {
		s += strings.Repeat(" ", width-w)
	}
	return s
}

// fitRight is fit aligned right, for numbers.
func fitRight(s string, width int) string {
	if width <= 0 {
		return ""
	}
	s = ansi.Truncate(s, width, "…")
	if w := ansi.StringWidth(s); w < width {
		s = strings.Repeat(" ", width-w) + s
	}
	return s
}

// clock formats a time for the views, in the snapshot's location.
func clock(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.Format("15:04:05")
}

// wrapWords wraps text to width cells at spaces, breaking only a word
// longer than a whole line. Unlike ansi.Wrap it never breaks at a hyphen,
// which would split a slug (implementer-b4d07) across lines.
func wrapWords(text string, width int) []string {
	width = max(width, 1)
	var out []string
	line := ""
	for _, w := range strings.Fields(text) {
		switch {
		case line == "":
			line = w
		case lipWidth(line)+1+lipWidth(w) <= width:
			line += " " + w
			continue
		default:
			out = append(out, line)
			line = w
		}
		for lipWidth(line) > width { // a word wider than the line
			out = append(out, ansi.Truncate(line, width, ""))
			line = ansi.TruncateLeft(line, width, "")
		}
	}
	return append(out, line)
}

// lines cuts s into exactly h lines of at most w cells, so every pane
// fills its box and nothing spills into the next.
func lines(s string, w, h int) string {
	ls := strings.Split(s, "\n")
	if len(ls) > h {
		ls = ls[:h]
	}
	for i, l := range ls {
		ls[i] = ansi.Truncate(l, w, "…")
	}
	for len(ls) < h {
		ls = append(ls, "")
	}
	return strings.Join(ls, "\n")
}

// lipWidth is the cells a styled string takes.
func lipWidth(s string) int { return ansi.StringWidth(s) }

// Printable drops control characters (C0, DEL and C1, escape included)
// from text a peer or an operator supplied, such as a report's model or an
// action's reason, so that it cannot move the cursor or repaint the
// operator's terminal. Tabs and newlines go too: every such field is one
// line in a cell.
func Printable(s string) string {
	if strings.IndexFunc(s, isControl) < 0 {
		return s
	}
	return strings.Map(func(r rune) rune {
		if isControl(r) {
			return -1
		}
		return r
	}, s)
}

func isControl(r rune) bool { return r < 0x20 || (r >= 0x7f && r < 0xa0) }
