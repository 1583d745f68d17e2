package tui

import (
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
)

// HelpView is the full key help (`?`), rendered from the same key map the
// panes match against, so a removed key is absent from both.
type HelpView struct {
	c      *Common
	width  int
	height int
}

// NewHelpView returns the help pane.
func NewHelpView(c *Common) *HelpView { return &HelpView{c: c} }

// Update does nothing: any key the root does not take closes help.
func (h *HelpView) Update(tea.Msg) tea.Cmd { return nil }

// SetSize gives the pane its box.
func (h *HelpView) SetSize(w, hh int) { h.width, h.height = w, hh }

// View renders the key columns and notes on actions.
func (h *HelpView) View() string {
	hm := h.c.newHelp()
	hm.SetWidth(h.width)
	k := h.c.Keys
	cols := hm.FullHelpView([][]key.Binding{k.navigation(), k.views(), k.actions()})
	notes := []string{
		h.c.Styles.Title.Render("keys"), "", cols, "",
		"Sorting orders siblings by the highest value in their subtree; the parent tree is kept.",
		"The filter matches slug, agent, name, parent, provider, scope and state.",
	}
	switch {
	case h.c.ReadOnly:
		notes = append(notes, "Read-only: the action keys are removed.")
	case !k.Cutoff.Enabled():
		notes = append(notes, "The daemon is unreachable: actions are disabled until it answers.")
	default:
		notes = append(notes, "Keys marked ! act on the bottle's containers. Each asks first, naming the bottle;",
			"the answer defaults to No: only y confirms.")
	}
	return lines(strings.Join(notes, "\n"), h.width, h.height)
}

// ShortHelp is how to leave help.
func (h *HelpView) ShortHelp() []key.Binding {
	return []key.Binding{h.c.Keys.Back, h.c.Keys.Help, h.c.Keys.Quit}
}

// FullHelp is how to leave help.
func (h *HelpView) FullHelp() [][]key.Binding { return [][]key.Binding{h.ShortHelp()} }
