package tui

import (
	"fmt"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"

	"github.com/bot-bottle/bottlecap/budget"
)

// Confirm is the modal dialog every action passes through. It names the
// bottle and the action and opens with No focused: Enter presses the
// focused button, so a stray Enter never cuts a bottle off. Tab,
// Shift-Tab and the arrows move the focus; `y` and `n` answer at once and
// esc cancels.
type Confirm struct {
	c      *Common
	open   bool
	yes    bool // Yes has the focus
	slug   string
	action budget.ActionKind
	width  int
	height int
}

// confirmedMsg is the dialog's yes.
type confirmedMsg struct {
	slug   string
	action budget.ActionKind
}

// cancelledMsg is the dialog's no.
type cancelledMsg struct{}

// NewConfirm returns a closed dialog.
func NewConfirm(c *Common) *Confirm { return &Confirm{c: c} }

// Ask opens the dialog for an action on a bottle.
func (d *Confirm) Ask(slug string, action budget.ActionKind) {
	d.open, d.yes, d.slug, d.action = true, false, slug, action
}

// Focused names the focused button, "No" or "Yes".
func (d *Confirm) Focused() string {
	if d.yes {
		return "Yes"
	}
	return "No"
}

// Open reports whether the dialog is showing.
func (d *Confirm) Open() bool { return d.open }

// Update answers y with confirmedMsg, n and esc with cancelledMsg, and
// Enter with the focused button's answer; Tab, Shift-Tab and the arrows
// move the focus. Every other key is swallowed while the dialog is open.
func (d *Confirm) Update(msg tea.Msg) tea.Cmd {
	k, ok := msg.(tea.KeyPressMsg)
	if !ok || !d.open {
		return nil
	}
	keys := d.c.Keys
	switch {
	case key.Matches(k, keys.Confirm):
		return d.answer(true)
	case key.Matches(k, keys.Cancel):
		return d.answer(false)
	case key.Matches(k, keys.Press):
		return d.answer(d.yes)
	case key.Matches(k, keys.NextButton, keys.PrevButton):
		d.yes = !d.yes // two buttons: either direction is the other one
	}
	return nil
}

// answer closes the dialog with yes or no.
func (d *Confirm) answer(yes bool) tea.Cmd {
	d.open = false
	if !yes {
		return func() tea.Msg { return cancelledMsg{} }
	}
	msg := confirmedMsg{d.slug, d.action}
	return func() tea.Msg { return msg }
}

// SetSize gives the dialog the box it is centred in.
func (d *Confirm) SetSize(w, h int) { d.width, d.height = w, h }

// View renders the dialog centred in its box.
func (d *Confirm) View() string {
	st := d.c.Styles
	q := st.Danger.Render(fmt.Sprintf("%s %s?", actionVerb(d.action), d.slug))
	body := lipgloss.JoinVertical(lipgloss.Left,
		q,
		"",
		lipgloss.NewStyle().Width(min(56, max(d.width-8, 20))).Render(actionEffect(d.action)),
		"",
		d.button("No", !d.yes)+"  "+d.button("Yes", d.yes),
		"",
		st.Dim.Render("tab/←/→: move · enter: press · y: yes · n/esc: no"),
	)
	box := st.Dialog.Render(body)
	return lipgloss.Place(d.width, d.height, lipgloss.Center, lipgloss.Center, box)
}

// button renders a button; the focused one is bracketed as well as
// highlighted, so focus shows on a terminal without colour too.
func (d *Confirm) button(label string, focused bool) string {
	if focused {
		return d.c.Styles.ButtonOn.Render("[ " + label + " ]")
	}
	return d.c.Styles.Button.Render("  " + label + "  ")
}

// ShortHelp is the dialog's keys.
func (d *Confirm) ShortHelp() []key.Binding { return d.c.Keys.dialog() }

// FullHelp is the dialog's keys.
func (d *Confirm) FullHelp() [][]key.Binding { return [][]key.Binding{d.ShortHelp()} }

// actionVerb is how the dialog and status line name an action.
func actionVerb(a budget.ActionKind) string {
	switch a {
	case budget.ActCutoff:
		return "Cut off"
	case budget.ActPause:
		return "Pause"
	case budget.ActFreeze:
		return "Freeze"
	case budget.ActKill:
		return "Kill"
	case budget.ActRestore:
		return "Restore"
	}
	return string(a)
}

// actionEffect says what the action does to the bottle (SPEC section 6).
func actionEffect(a budget.ActionKind) string {
	switch a {
	case budget.ActCutoff:
		return "Disconnects its containers from every non-internal network and empties its egress routes. Restore undoes it."
	case budget.ActPause:
		return "Ends its streams and pauses its agent containers where they are (nothing is lost); its sidecars keep running. Restore unpauses it."
	case budget.ActFreeze:
		return "Commits the agent container to an image, then stops all of its containers. bot-bottle resume boots from the image."
	case budget.ActKill:
		return "Stops and removes all of its containers and networks, saving nothing. This cannot be undone."
	case budget.ActRestore:
		return "Reconnects its networks and routes and unpauses its containers. While its budget is exhausted the gate keeps denying."
	}
	return ""
}
