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
	a.scroll.key(msg, len(a.entries)+1)
	return nil
}

// SetSize gives the pane its box.
func (a *AuditView) SetSize(w, h int) { a.scroll.width, a.scroll.height = w, h }

// View renders a title line and the visible entries.
func (a *AuditView) View() string {
	head := fmt.Sprintf("%6s  %-14s  %-15s %-18s %s", "SEQ", "TIME", "KIND", "BOTTLE", "DETAIL")
	title := a.c.Styles.Title.Render(fmt.Sprintf("audit log (latest %d, newest first)", len(a.entries)))
	ls := append([]string{title, a.c.Styles.ColHeader.Render(head)}, auditLines(a.entries, true)...)
	return a.scroll.window(ls)
}

// ShortHelp is the audit pane's keys.
func (a *AuditView) ShortHelp() []key.Binding {
	k := a.c.Keys
	return []key.Binding{k.Back, k.Up, k.Down, k.PageDown, k.Help, k.Quit}
}

// FullHelp is every key, grouped.
func (a *AuditView) FullHelp() [][]key.Binding {
	k := a.c.Keys
	return [][]key.Binding{k.navigation(), k.views()}
}
