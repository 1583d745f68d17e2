package tui

import (
	"strconv"
	"strings"

	"charm.land/lipgloss/v2"

	"github.com/bot-bottle/bottlecap/budget"
)

// column is one table column. Each column gets at least min cells; when
// the terminal is too narrow for every minimum, columns with a lower keep
// are dropped first. Width left over goes first to the figures, up to
// their comfortable width, then is shared by grow weight up to max (the
// bars take the largest share), and what is left after every max goes to
// the bottle column. text is the cell without colour for the width it got;
// style, when set, colours it.
type column struct {
	title string
	short string // the title when title does not fit
	min   int
	max   int
	grow  int
	keep  int
	right bool
	text  func(r Row, width int) string
	style func(s *Styles, r Row) lipgloss.Style

	width int // set by layout
}

// markerWidth is the selection marker column ("▸ ") before the cells.
const markerWidth = 2

// The bottle column is as wide as its widest slug and tree branch, so
// that slugs show whole, but no narrower than slugMin nor, before other
// columns drop, wider than slugCap: a deeper tree or a longer slug than
// that is cut in its middle (cutMiddle).
const (
	slugMin = 12
	slugCap = 30
)

// columns is the table's columns in display order; the bottle column is
// first. Figures have a narrow form (used/limit without spaces) so that 80
// columns keep a slug whole rather than a scope name.
var columns = []column{
	{title: "BOTTLE", grow: 8, keep: 100, text: slugText}, // min and max from the rows
	{title: "AGENT", min: 10, max: 16, grow: 1, keep: 10, text: func(r Row, _ int) string { return r.Agent }},
	{title: "PROVIDER", min: 8, max: 12, grow: 1, keep: 30, text: providerText},
	{title: "USAGE", min: 10, max: 32, grow: 4, keep: 25, text: func(r Row, w int) string { return bar(r.Percent, w, r.Unlimited) }, style: barStyle},
	{title: "USED / LIMIT", short: "USED/LIMIT", min: 11, max: 13, keep: 90, right: true, text: usedText},
	{title: "%", min: 4, max: 5, keep: 95, right: true, text: percentText},
	{title: "SCOPE", min: 10, max: 30, grow: 2, keep: 60, text: scopeText},
	{title: "BURN", min: 7, max: 7, keep: 40, right: true, text: func(r Row, _ int) string { return burnRate(r.Burn) }},
	{title: "ETA", min: 5, max: 5, keep: 50, right: true, text: func(r Row, _ int) string { return eta(r.ETA) }},
	{title: "STATE", min: 9, max: 9, keep: 99, text: func(r Row, _ int) string { return stateText(r.State) }, style: stateStyle},
}

// growOrder is the order the round-robin hands out extra cells in: a slug
// cut for want of room first, then the bars before the names.
var growOrder = []string{"BOTTLE", "USAGE", "SCOPE", "AGENT", "PROVIDER"}

// layout picks the columns that fit in width (less the marker) and sizes
// them for rows (every row, not only those in view, so that the columns
// stay put while the operator filters).
func layout(width int, rows []Row) []column {
	cols := append([]column(nil), columns...)
	need := 0
	for _, r := range rows {
		need = max(need, slugWidth(r))
	}
	cols[0].min = max(slugMin, min(need, slugCap))
	cols[0].max = max(cols[0].min, need)
	for i := range cols {
		cols[i].width = cols[i].min
	}
	avail := width - markerWidth
	for used(cols) > avail && len(cols) > 1 {
		cols = dropWeakest(cols)
	}
	extra := avail - used(cols)
	extra = widenFigures(cols, extra)
	extra = share(cols, extra)
	cols[0].width = max(cols[0].width+extra, 4) // past every max: padding
	return cols
}

// used is the cells the columns take, with one space between each two.
func used(cols []column) int {
	n := len(cols) - 1
	for _, c := range cols {
		n += c.width
	}
	return n
}

// widenFigures gives the figure columns (those that do not grow) their
// comfortable width first: a spaced "412k / 1M" reads better than a
// longer slug column helps.
func widenFigures(cols []column, extra int) int {
	for i := range cols {
		if cols[i].grow == 0 {
			d := min(cols[i].max-cols[i].width, extra)
			cols[i].width += d
			extra -= d
		}
	}
	return extra
}

// share hands extra out in rounds, each growing column taking its grow
// weight in cells per round until it reaches its max; it returns what no
// column could take.
func share(cols []column, extra int) int {
	for extra > 0 {
		gave := false
		for _, title := range growOrder {
			i := columnIndex(cols, title)
			if i < 0 {
				continue
			}
			d := min(cols[i].grow, cols[i].max-cols[i].width, extra)
			if d > 0 {
				cols[i].width += d
				extra -= d
				gave = true
			}
		}
		if !gave {
			break
		}
	}
	return extra
}

func columnIndex(cols []column, title string) int {
	for i, c := range cols {
		if c.title == title {
			return i
		}
	}
	return -1
}

func dropWeakest(cols []column) []column {
	weakest := 1
	for i := 2; i < len(cols); i++ {
		if cols[i].keep < cols[weakest].keep {
			weakest = i
		}
	}
	return append(cols[:weakest], cols[weakest+1:]...)
}

// renderRow renders one row's cells. The selected row has the Selected
// background under every cell, and a cell's own colour stays on top of it,
// so that it still shows its bar and state colours.
func renderRow(s *Styles, cols []column, r Row, selected bool) string {
	cells := make([]string, len(cols))
	for i, c := range cols {
		t := c.text(r, c.width)
		if c.right {
			t = fitRight(t, c.width)
		} else {
			t = fit(t, c.width)
		}
		switch {
		case c.style != nil && selected:
			t = c.style(s, r).Inherit(s.Selected).Render(t)
		case c.style != nil:
			t = c.style(s, r).Render(t)
		case selected:
			t = s.Selected.Render(t)
		}
		cells[i] = t
	}
	sep := " "
	if selected {
		sep = s.Selected.Render(sep)
	}
	return strings.Join(cells, sep)
}

// renderHeader renders the column titles.
func renderHeader(cols []column) string {
	cells := make([]string, len(cols))
	for i, c := range cols {
		t := c.title
		if lipWidth(t) > c.width && c.short != "" {
			t = c.short
		}
		if c.right {
			cells[i] = fitRight(t, c.width)
		} else {
			cells[i] = fit(t, c.width)
		}
	}
	return strings.Join(cells, " ")
}

// slugText indents a bottle under its parent with a tree branch. A slug
// too long for the cell loses its middle, never its end: bot-bottle slugs
// differ in their suffix.
func slugText(r Row, width int) string {
	prefix := ""
	if r.Depth > 0 {
		prefix = strings.Repeat("  ", r.Depth-1) + "└ "
	}
	return prefix + cutMiddle(r.Slug, width-lipWidth(prefix))
}

// slugWidth is the cells a row's slug and tree branch take. Slugs are
// ASCII (budget.ValidateSlug) and the branch is two cells a level, so
// this is the width of slugText without measuring a thousand strings a
// frame.
func slugWidth(r Row) int { return 2*r.Depth + len(r.Slug) }

// usedText is "412k / 1M", or "412k/1M" when the column is narrow.
func usedText(r Row, width int) string {
	t := usedOfLimit(r.Used, r.Limit, r.Unlimited)
	if lipWidth(t) > width {
		t = strings.ReplaceAll(t, " / ", "/")
	}
	return t
}

// percentText is "82%", or a multiple ("12×") when a far exceeded limit's
// percentage does not fit.
func percentText(r Row, width int) string {
	t := percent(r.Percent, r.Unlimited)
	if lipWidth(t) > width {
		t = strconv.FormatFloat(r.Percent/100, 'f', 0, 64) + "×"
	}
	return t
}

// scopeText is the governing scope as wide as the cell allows: "parent
// implementer-b4d07·day", then "parent …er-b4d07·day" (the slug cut in the
// middle), then "parent·day".
func scopeText(r Row, width int) string { return scopeFit(r.Scope, r.Window, width) }

// scopeFit is a scope's label and window tag in at most width cells, as
// scopeText describes; last, the window's name is shortened ("global·mo").
func scopeFit(s budget.Scope, window string, width int) string {
	kind, tag := scopeKindLabel(s), windowTag(window)
	full := scopeLabel(s) + tag
	if lipWidth(full) <= width {
		return full
	}
	if id := scopeID(s); id != "" {
		if room := width - lipWidth(kind) - 1 - lipWidth(tag); room >= 6 {
			return kind + " " + cutMiddle(id, room) + tag
		}
	}
	if t := kind + tag; lipWidth(t) <= width {
		return t
	}
	return kind + shortWindowTag(window)
}

func providerText(r Row, _ int) string {
	switch len(r.Providers) {
	case 0:
		return "—"
	case 1:
		return r.Provider
	}
	return r.Provider + "+" + strconv.Itoa(len(r.Providers)-1)
}

// barStyle colours a bar by the bottle's state; an active bottle's bar is
// green, or red once over its limit.
func barStyle(s *Styles, r Row) lipgloss.Style {
	if r.State != budget.Active {
		return s.States[r.State]
	}
	if r.Percent >= 100 {
		return s.Error
	}
	return s.Good
}

func stateStyle(s *Styles, r Row) lipgloss.Style {
	return s.States[r.State]
}
