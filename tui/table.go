package tui

import (
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
)

// Table is the bottle table: every bottle in its parent tree, sortable and
// filterable, with a cursor that stays on the same bottle across refreshes.
type Table struct {
	c         *Common
	rows      []Row // as loaded, in tree order
	view      []Row // sorted and filtered
	cursor    int
	offset    int
	selected  string
	sort      SortMode
	filter    filterLine
	filtering bool
	stopped   stoppedView
	hidden    int // stopped bottles left out of view
	width     int
	height    int
}

// stoppedView is whether the table shows stopped (frozen or killed)
// bottles, as `docker ps` and `docker ps -a` differ.
type stoppedView int

const (
	// stoppedAuto shows them until more are stopped than fit on a screen,
	// and hides them from then on; the first `h` ends it.
	stoppedAuto stoppedView = iota
	stoppedShown
	stoppedHidden
)

// NewTable returns an empty table sorted by usage.
func NewTable(c *Common) *Table {
	return &Table{c: c, sort: SortUsage}
}

// SetRows replaces the rows after a refresh, keeping the cursor on the
// bottle it was on.
func (t *Table) SetRows(rows []Row) {
	t.rows = rows
	t.refresh()
}

// refresh re-sorts and re-filters, then puts the cursor back on the
// selected bottle (or clamps it when that bottle is gone).
func (t *Table) refresh() {
	rows := sortRows(t.rows, t.sort)
	t.hidden = 0
	if t.hidingStopped() {
		kept := hideStopped(rows)
		t.hidden = len(rows) - len(kept)
		rows = kept
	}
	t.view = filterRows(rows, t.filter.value())
	t.labelStoppedKey()
	t.cursor = min(t.cursor, max(len(t.view)-1, 0))
	for i, r := range t.view {
		if r.Slug == t.selected {
			t.cursor = i
			break
		}
	}
	t.remember()
	t.scroll()
}

func (t *Table) remember() {
	if r, ok := t.Selected(); ok {
		t.selected = r.Slug
	}
}

// hidingStopped reports whether stopped bottles are out of view: the
// operator's choice, or until one is made, whether more are stopped than
// fit on a screen.
func (t *Table) hidingStopped() bool {
	switch t.stopped {
	case stoppedShown:
		return false
	case stoppedHidden:
		return true
	}
	n := 0
	for _, r := range t.rows {
		if stopped(r.State) {
			n++
		}
	}
	return n > t.bodyHeight()
}

// labelStoppedKey makes `h` say what it will do.
func (t *Table) labelStoppedKey() {
	if t.hidingStopped() {
		t.c.Keys.HideStopped.SetHelp("h", "show stopped")
	} else {
		t.c.Keys.HideStopped.SetHelp("h", "hide stopped")
	}
}

// Hidden is how many stopped bottles are out of view.
func (t *Table) Hidden() int { return t.hidden }

// hideStopped leaves out stopped bottles, except one with a bottle still
// in view below it, so that the tree keeps every shown bottle's parent.
// rows are in tree order; a backward pass knows each row's subtree when
// it reaches the row.
func hideStopped(rows []Row) []Row {
	keep := make([]bool, len(rows))
	var shownBelow []bool // per depth: a shown row at that depth since the last shallower row
	for i := len(rows) - 1; i >= 0; i-- {
		d := rows[i].Depth
		for len(shownBelow) <= d+1 {
			shownBelow = append(shownBelow, false)
		}
		child := false
		for _, b := range shownBelow[d+1:] {
			child = child || b
		}
		keep[i] = !stopped(rows[i].State) || child
		clear(shownBelow[d+1:])
		shownBelow[d] = shownBelow[d] || keep[i]
	}
	out := make([]Row, 0, len(rows))
	for i, r := range rows {
		if keep[i] {
			out = append(out, r)
		}
	}
	return out
}

// Selected is the row under the cursor.
func (t *Table) Selected() (Row, bool) {
	if t.cursor < 0 || t.cursor >= len(t.view) {
		return Row{}, false
	}
	return t.view[t.cursor], true
}

// Sort is the current sort order.
func (t *Table) Sort() SortMode { return t.sort }

// Filter is the current filter text.
func (t *Table) Filter() string { return t.filter.value() }

// Filtering reports whether the filter line has the keyboard.
func (t *Table) Filtering() bool { return t.filtering }

// Visible is the rows shown, in order, after sorting and filtering.
func (t *Table) Visible() []Row { return t.view }

// SetSize gives the table its box.
func (t *Table) SetSize(w, h int) {
	t.width, t.height = w, h
	t.refresh() // how many rows fit decides whether stopped ones hide
}

// Update moves the cursor, cycles the sort and edits the filter.
func (t *Table) Update(msg tea.Msg) tea.Cmd {
	k, ok := msg.(tea.KeyPressMsg)
	if !ok {
		return nil
	}
	if t.filtering {
		return t.editFilter(k)
	}
	return t.key(k)
}

func (t *Table) key(k tea.KeyPressMsg) tea.Cmd {
	keys := t.c.Keys
	switch {
	case key.Matches(k, keys.Up):
		t.move(-1)
	case key.Matches(k, keys.Down):
		t.move(1)
	case key.Matches(k, keys.PageUp):
		t.move(-t.pageSize())
	case key.Matches(k, keys.PageDown):
		t.move(t.pageSize())
	case key.Matches(k, keys.Top):
		t.move(-len(t.view))
	case key.Matches(k, keys.Bottom):
		t.move(len(t.view))
	case key.Matches(k, keys.Sort):
		t.sort = t.sort.next()
		t.refresh()
	case key.Matches(k, keys.HideStopped):
		if t.hidingStopped() {
			t.stopped = stoppedShown
		} else {
			t.stopped = stoppedHidden
		}
		t.refresh()
	case key.Matches(k, keys.Filter):
		t.filtering = true
	case key.Matches(k, keys.Back) && t.filter.value() != "":
		t.filter.set("")
		t.refresh()
	}
	return nil
}

// editFilter applies the filter as it is typed; enter keeps it, esc
// clears it.
func (t *Table) editFilter(k tea.KeyPressMsg) tea.Cmd {
	switch k.String() {
	case "enter":
		t.filtering = false
		return nil
	case "esc":
		t.filtering = false
		t.filter.set("")
	default:
		t.filter.edit(k)
	}
	t.refresh()
	return nil
}

func (t *Table) move(d int) {
	t.cursor = max(0, min(t.cursor+d, len(t.view)-1))
	t.remember()
	t.scroll()
}

// bodyHeight is the lines left for rows under the column header and the
// filter line.
func (t *Table) bodyHeight() int {
	h := t.height - 1
	if t.filtering || t.filter.value() != "" {
		h--
	}
	return max(h, 1)
}

func (t *Table) pageSize() int { return max(t.bodyHeight()-1, 1) }

func (t *Table) scroll() {
	h := t.bodyHeight()
	if t.cursor < t.offset {
		t.offset = t.cursor
	}
	if t.cursor >= t.offset+h {
		t.offset = t.cursor - h + 1
	}
	t.offset = max(0, min(t.offset, len(t.view)-h))
}

// View renders the column header, the visible rows and the filter line.
func (t *Table) View() string {
	cols := layout(t.width, t.rows)
	var b strings.Builder
	b.WriteString(t.c.Styles.ColHeader.Render(fit("  "+renderHeader(cols), t.width)))
	end := min(t.offset+t.bodyHeight(), len(t.view))
	for i := t.offset; i < end; i++ {
		b.WriteByte('\n')
		b.WriteString(t.renderLine(cols, i))
	}
	if len(t.view) == 0 {
		b.WriteString("\n" + t.c.Styles.Dim.Render(t.emptyText()))
	}
	body := lines(b.String(), t.width, t.height-t.filterLines())
	if t.filterLines() > 0 {
		body += "\n" + fit(t.filter.view(t.filtering), t.width)
	}
	return body
}

func (t *Table) renderLine(cols []column, i int) string {
	st := t.c.Styles
	if i == t.cursor {
		return st.Selected.Render("▸ ") + renderRow(st, cols, t.view[i], true)
	}
	return "  " + renderRow(st, cols, t.view[i], false)
}

func (t *Table) filterLines() int {
	if t.filtering || t.filter.value() != "" {
		return 1
	}
	return 0
}

func (t *Table) emptyText() string {
	switch {
	case len(t.rows) == 0:
		return "  no bottles registered yet"
	case t.filter.value() == "" && t.hidden > 0:
		return "  every bottle is stopped: h shows them"
	}
	return "  no bottle matches the filter"
}

// ShortHelp is the table's one-line help.
func (t *Table) ShortHelp() []key.Binding {
	k := t.c.Keys
	if t.filtering {
		return []key.Binding{
			key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "keep filter")),
			key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "clear filter")),
		}
	}
	return append([]key.Binding{k.Details, k.Filter, k.Sort, k.HideStopped, k.Audit, k.Fleet, k.Help, k.Quit}, k.actions()...)
}

// FullHelp is every key, grouped.
func (t *Table) FullHelp() [][]key.Binding {
	k := t.c.Keys
	return [][]key.Binding{k.navigation(), k.views(), k.actions()}
}

// filterLine is the text typed after `/`. It takes printable text and
// backspace; twenty lines are clearer here than a text-input widget.
type filterLine struct{ text []rune }

func (f *filterLine) value() string { return string(f.text) }

func (f *filterLine) set(s string) { f.text = []rune(s) }

// edit applies one key: printable text appends, backspace deletes the last
// rune, ctrl+u clears.
func (f *filterLine) edit(k tea.KeyPressMsg) {
	switch k.String() {
	case "backspace":
		if len(f.text) > 0 {
			f.text = f.text[:len(f.text)-1]
		}
	case "ctrl+u":
		f.text = nil
	default:
		if k.Text != "" && k.Mod&^tea.ModShift == 0 {
			f.text = append(f.text, []rune(k.Text)...)
		}
	}
}

// view shows the filter, with a block cursor while it is being edited.
func (f *filterLine) view(editing bool) string {
	s := "/" + string(f.text)
	if editing {
		s += "█"
	}
	return s
}
