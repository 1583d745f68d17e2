package tui

import (
	"fmt"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/bot-bottle/bottlecap/api"
)

// AuditView is the host's audit log, newest first.
type AuditView struct {
	c       *Common
	entries []api.AuditEntry
	scroll  scroller
}

// NewAuditView returns an empty audit pane.
func NewAuditView(c *Common) *AuditView {
	return &AuditView{c: c, scroll: scroller{keys: c.Keys}}
}

// SetEntries gives the pane the snapshot's audit log.
func (a *AuditView) SetEntries(es []api.AuditEntry) { a.entries = es }

// Update scrolls.
func (a *AuditView) Update(msg tea.Msg) tea.Cmd {
	a.scroll.key(msg, len(a.content()))
	return nil
}

// SetSize gives the pane its box.
func (a *AuditView) SetSize(w, h int) { a.scroll.width, a.scroll.height = w, h }

// View renders a title line and the visible entries.
func (a *AuditView) View() string {
	return a.scroll.window(a.content())
}

// content is every line of the pane: details wrap, so there can be more
// lines than entries.
func (a *AuditView) content() []string {
	head := newAuditColumns(a.entries, true).header()
	title := a.c.Styles.Title.Render(fmt.Sprintf("audit log (latest %d, newest first)", len(a.entries)))
	return append([]string{title, a.c.Styles.ColHeader.Render(head)}, auditLines(a.entries, true, a.scroll.width)...)
}

// ShortHelp is the audit pane's keys.
func (a *AuditView) ShortHelp() []key.Binding { return a.c.Keys.reading() }

// FullHelp is every key, grouped.
func (a *AuditView) FullHelp() [][]key.Binding {
	k := a.c.Keys
	return [][]key.Binding{k.navigation(), k.views()}
}
