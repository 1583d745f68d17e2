package tui

import (
	"strconv"
	"strings"

	"charm.land/lipgloss/v2"

	"github.com/bot-bottle/bottlecap/budget"
)

// column is one table column. Columns with a lower keep are dropped first
// when the terminal is narrow; the bottle column takes what is left. text
// is the cell without colour; style, when set, colours it.
type column struct {
	title string
	width int
	keep  int
	right bool
	text  func(r Row, width int) string
	style func(s *Styles, r Row) lipgloss.Style
}

// slugMin is the narrowest the bottle column gets before others drop.
const slugMin = 14

// columns is the table's columns in display order; the bottle column's
// width is computed.
var columns = []column{
	{title: "BOTTLE", keep: 100, text: slugText},
	{title: "AGENT", width: 10, keep: 10, text: func(r Row, _ int) string { return r.Agent }},
	{title: "PROVIDER", width: 8, keep: 20, text: providerText},
	{title: "USAGE", width: 12, keep: 5, text: func(r Row, w int) string { return bar(r.Percent, w, r.Unlimited) }, style: barStyle},
	{title: "USED / LIMIT", width: 13, keep: 90, right: true, text: func(r Row, _ int) string { return usedOfLimit(r.Used, r.Limit, r.Unlimited) }},
	{title: "%", width: 5, keep: 95, right: true, text: func(r Row, _ int) string { return percent(r.Percent, r.Unlimited) }},
	{title: "SCOPE", width: 14, keep: 60, text: func(r Row, _ int) string { return scopeLabel(r.Scope) + windowTag(r.Window) }},
	{title: "BURN", width: 7, keep: 40, right: true, text: func(r Row, _ int) string { return burnRate(r.Burn) }},
	{title: "ETA", width: 6, keep: 50, right: true, text: func(r Row, _ int) string { return eta(r.ETA) }},
	{title: "STATE", width: 10, keep: 99, text: func(r Row, _ int) string { return stateText(r.State) }, style: stateStyle},
}

// layout picks the columns that fit in width (less the cursor marker) and
// sizes the bottle column.
func layout(width int) []column {
	cols := append([]column(nil), columns...)
	avail := width - 2
	for used(cols) > avail-slugMin && len(cols) > 1 {
		cols = dropWeakest(cols)
	}
	cols[0].width = max(avail-used(cols), 4)
	return cols
}

// used is the width of every column but the bottle column, with one space
// of separation each.
func used(cols []column) int {
	n := 0
	for _, c := range cols[1:] {
		n += c.width + 1
	}
	return n
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

// renderRow renders one row's cells; plain drops colour (for the selected
// row, which is shown reversed).
func renderRow(s *Styles, cols []column, r Row, plain bool) string {
	cells := make([]string, len(cols))
	for i, c := range cols {
		t := c.text(r, c.width)
		if c.right {
			t = fitRight(t, c.width)
		} else {
			t = fit(t, c.width)
		}
		if c.style != nil && !plain {
			t = c.style(s, r).Render(t)
		}
		cells[i] = t
	}
	return strings.Join(cells, " ")
}

// renderHeader renders the column titles.
func renderHeader(cols []column) string {
	cells := make([]string, len(cols))
	for i, c := range cols {
		if c.right {
			cells[i] = fitRight(c.title, c.width)
		} else {
			cells[i] = fit(c.title, c.width)
		}
	}
	return strings.Join(cells, " ")
}

// slugText indents a bottle under its parent with a tree branch.
func slugText(r Row, _ int) string {
	if r.Depth == 0 {
		return r.Slug
	}
	return strings.Repeat("  ", r.Depth-1) + "└ " + r.Slug
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
