package tui

import (
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
)

// HelpView is the full key help (`?`), rendered from the same key map the
// panes match against, so a removed key is absent from both. It scrolls
// when the terminal is too short for it.
type HelpView struct {
	c      *Common
	scroll scroller
}

// NewHelpView returns the help pane.
func NewHelpView(c *Common) *HelpView { return &HelpView{c: c, scroll: scroller{keys: c.Keys}} }

// Update scrolls.
func (h *HelpView) Update(msg tea.Msg) tea.Cmd {
	h.scroll.key(msg, len(h.content()))
	return nil
}

// SetSize gives the pane its box.
func (h *HelpView) SetSize(w, hh int) { h.scroll.width, h.scroll.height = w, hh }

// View renders the visible part of the help.
func (h *HelpView) View() string { return h.scroll.window(h.content()) }

// content is the key columns and the notes, wrapped to the pane's width.
func (h *HelpView) content() []string {
	hm := h.c.newHelp()
	hm.SetWidth(h.scroll.width)
	k := h.c.Keys
	out := []string{h.c.Styles.Title.Render("keys")}
	out = append(out, strings.Split(hm.FullHelpView([][]key.Binding{k.navigation(), k.views(), k.actions()}), "\n")...)
	out = append(out, "")
	for _, p := range h.notes() {
		out = append(out, wrapWords(p, h.scroll.width)...)
	}
	return out
}

// notes are the help's paragraphs of prose.
func (h *HelpView) notes() []string {
	notes := []string{
		"Sorting orders siblings by the highest value in their subtree; the parent tree is kept.",
		"The filter matches slug, agent, name, parent, provider, scope and state.",
		"h hides stopped (frozen and killed) bottles, as docker ps hides exited containers, " +
			"but keeps one with a running bottle below it. Once more are stopped than fit on the screen they are hidden " +
			"until h shows them.",
	}
	if h.c.Keys.Fleet.Enabled() {
		notes = append(notes, "F lists the fleet's hosts: USED is what each has shipped to Postgres over its life, "+
			"LEASE what its lease still reserves of the fleet budget (expired: its host stopped renewing it), "+
			"LAG the age of its oldest report not yet shipped. * marks this host.")
	}
	switch {
	case h.c.ReadOnly:
		notes = append(notes, "Read-only: the action keys are removed.")
	case !h.c.Keys.Cutoff.Enabled():
		notes = append(notes, "The daemon is unreachable: actions are disabled until it answers.")
	default:
		notes = append(notes, "Keys marked ! act on the bottle's containers. Each asks first, naming the bottle, "+
			"with No focused: y, or enter on Yes, confirms; n or esc cancels; tab, shift+tab and the arrows "+
			"move between the buttons.")
	}
	return notes
}

// ShortHelp is how to leave and scroll help.
func (h *HelpView) ShortHelp() []key.Binding {
	k := h.c.Keys
	return []key.Binding{k.Back, k.Help, k.Up, k.Down, k.Quit}
}

// FullHelp is how to leave help.
func (h *HelpView) FullHelp() [][]key.Binding { return [][]key.Binding{h.ShortHelp()} }
