package tui

import (
	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/bot-bottle/bottlecap/budget"
)

// onKey routes a key press: the dialog takes every key while open, the
// filter line takes every key while editing, then the global keys, then
// the page's own.
func (m *Model) onKey(k tea.KeyPressMsg) tea.Cmd {
	keys := m.c.Keys
	switch {
	case m.confirm.Open():
		return m.confirm.Update(k)
	case m.page == PageTable && m.table.Filtering():
		return m.table.Update(k)
	case key.Matches(k, keys.Quit):
		return tea.Quit
	case key.Matches(k, keys.Help):
		m.toggleHelp()
		return nil
	}
	if cmd, ok := m.actionKey(k); ok {
		return cmd
	}
	switch m.page {
	case PageDetail:
		return m.detailKey(k)
	case PageAudit:
		return m.auditKey(k)
	case PageFleet:
		return m.fleetKey(k)
	case PageHelp:
		return m.helpKey(k)
	}
	return m.tableKey(k)
}

func (m *Model) toggleHelp() {
	if m.page == PageHelp {
		m.page = m.back
		return
	}
	m.back, m.page = m.page, PageHelp
}

// actionKey opens the dialog for c, f, x and r on the bottle in view. A
// disabled key (daemon unreachable) says why it does nothing; a removed
// one (read-only) matches nothing at all.
func (m *Model) actionKey(k tea.KeyPressMsg) (tea.Cmd, bool) {
	if m.page != PageTable && m.page != PageDetail {
		return nil, false
	}
	action, enabled, ok := m.c.Keys.action(k.String())
	if !ok {
		return nil, false
	}
	if !enabled {
		m.status.SetError("daemon unreachable: actions are disabled")
		return nil, true
	}
	slug, found := m.target()
	if !found {
		m.status.SetError("no bottle selected")
		return nil, true
	}
	m.ask(slug, action)
	return nil, true
}

// target is the bottle an action would apply to.
func (m *Model) target() (string, bool) {
	if m.page == PageDetail {
		return m.detail.Slug(), m.detail.Slug() != ""
	}
	r, ok := m.table.Selected()
	return r.Slug, ok
}

func (m *Model) ask(slug string, action budget.ActionKind) {
	m.confirm.Ask(slug, action)
	m.status.Set("")
}

func (m *Model) tableKey(k tea.KeyPressMsg) tea.Cmd {
	keys := m.c.Keys
	switch {
	case key.Matches(k, keys.Details):
		r, ok := m.table.Selected()
		if !ok {
			return nil
		}
		m.detail.Show(r.Slug)
		m.page = PageDetail
		return m.requestLoad()
	case key.Matches(k, keys.Audit):
		m.page = PageAudit
		return nil
	case pressed(k, keys.Fleet):
		m.openFleet()
		return nil
	}
	return m.table.Update(k)
}

func (m *Model) detailKey(k tea.KeyPressMsg) tea.Cmd {
	switch {
	case key.Matches(k, m.c.Keys.Back):
		m.page = PageTable
		return nil
	case key.Matches(k, m.c.Keys.Audit):
		m.page = PageAudit
		return nil
	case pressed(k, m.c.Keys.Fleet):
		m.openFleet()
		return nil
	}
	return m.detail.Update(k)
}

func (m *Model) auditKey(k tea.KeyPressMsg) tea.Cmd {
	if key.Matches(k, m.c.Keys.Back, m.c.Keys.Audit) {
		m.page = PageTable
		return nil
	}
	return m.audit.Update(k)
}

func (m *Model) helpKey(k tea.KeyPressMsg) tea.Cmd {
	if key.Matches(k, m.c.Keys.Back) {
		m.page = m.back
		return nil
	}
	return m.help.Update(k)
}

// openFleet shows the fleet pane, or says in the status line why there
// is no fleet to show.
func (m *Model) openFleet() {
	if !m.c.Keys.Fleet.Enabled() {
		m.status.SetError(fleetUnknown(&m.snap))
		return
	}
	m.page = PageFleet
}

// fleetKey leaves the fleet pane on esc or F; the rest scrolls it. F
// still leaves it when the fleet went away while it was open.
func (m *Model) fleetKey(k tea.KeyPressMsg) tea.Cmd {
	if key.Matches(k, m.c.Keys.Back) || pressed(k, m.c.Keys.Fleet) {
		m.page = PageTable
		return nil
	}
	return m.fleet.Update(k)
}
