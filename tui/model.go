package tui

import (
	"context"
	"fmt"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
)

// Page is the pane that fills the body.
type Page int

// The dashboard's pages.
const (
	PageTable Page = iota
	PageDetail
	PageAudit
	PageHelp
	PageFleet
)

// Model is the dashboard's root model. It only routes: messages go to the
// pane they concern, I/O goes out as commands, and View stacks the panes.
type Model struct {
	c      *Common
	ctx    context.Context
	src    Source
	daemon Daemon
	every  time.Duration

	snap   Snapshot
	loaded bool
	page   Page
	back   Page // the page help returns to

	loading bool
	dirty   bool // a refresh was asked for while loading or paused

	header  *Header
	table   *Table
	detail  *DetailView
	audit   *AuditView
	fleet   *FleetView
	help    *HelpView
	confirm *Confirm
	status  *Status
}

// NewModel builds the dashboard from its options. Run uses it; tests drive
// it directly or through teatest.
func NewModel(ctx context.Context, o Options) *Model {
	o = o.withDefaults()
	c := &Common{Styles: DefaultStyles(), Keys: DefaultKeyMap(), Now: o.Now, ReadOnly: o.ReadOnly, Banner: o.Banner}
	if o.ReadOnly {
		c.Keys.RemoveActions()
	}
	c.Keys.SetActionsEnabled(false) // until the daemon is seen
	m := &Model{c: c, ctx: ctx, src: o.Source, daemon: o.Daemon, every: o.Refresh,
		header: NewHeader(c), table: NewTable(c), detail: NewDetailView(c), audit: NewAuditView(c),
		fleet: NewFleetView(c), help: NewHelpView(c), confirm: NewConfirm(c), status: NewStatus(c)}
	m.resize(80, 24)
	return m
}

// Init loads the first snapshot, starts the refresh timer and opens the
// event stream.
func (m *Model) Init() tea.Cmd {
	return tea.Batch(m.requestLoad(), tickCmd(m.every), subscribeCmd(m.ctx, m.daemon))
}

// Update routes a message to the method that handles its type.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.resize(msg.Width, msg.Height)
		return m, nil
	case tea.KeyPressMsg:
		return m, m.onKey(msg)
	case snapshotMsg:
		return m, m.onSnapshot(msg)
	case tickMsg:
		return m, tea.Batch(m.requestLoad(), tickCmd(m.every))
	case subscribedMsg:
		return m, waitEventsCmd(msg.ch)
	case eventsMsg:
		return m, m.onEvents(msg)
	case unsubscribedMsg:
		return m, resubscribeCmd()
	case resubscribeMsg:
		return m, subscribeCmd(m.ctx, m.daemon)
	case confirmedMsg:
		return m, m.onConfirmed(msg)
	case cancelledMsg:
		m.status.Set("cancelled")
		return m, m.resume()
	case actedMsg:
		return m, m.onActed(msg)
	}
	return m, m.table.Update(msg) // the filter's cursor blink
}

// requestLoad starts a load unless one is running or a dialog is open; then
// it only marks the snapshot stale, and the load runs when they finish.
func (m *Model) requestLoad() tea.Cmd {
	if m.loading || m.confirm.Open() {
		m.dirty = true
		return nil
	}
	m.loading, m.dirty = true, false
	detail := ""
	if m.page == PageDetail {
		detail = m.detail.Slug()
	}
	return loadCmd(m.ctx, m.src, m.daemon, detail)
}

// resume runs a refresh that was held back while the dialog was open.
func (m *Model) resume() tea.Cmd {
	if m.dirty {
		return m.requestLoad()
	}
	return nil
}

func (m *Model) onSnapshot(msg snapshotMsg) tea.Cmd {
	m.loading = false
	if msg.err != nil {
		m.status.SetError(fmt.Sprintf("cannot read the store: %v", msg.err))
		return m.resume()
	}
	m.apply(msg.snap)
	return m.resume()
}

// apply hands a snapshot to every pane and follows the daemon's
// reachability with the action keys.
func (m *Model) apply(s Snapshot) {
	cameBack := m.loaded && !m.snap.DaemonUp && s.DaemonUp
	m.snap, m.loaded = s, true
	m.c.Keys.SetActionsEnabled(s.DaemonUp)
	m.c.Keys.Fleet.SetEnabled(s.Fleet != nil)
	if cameBack && strings.HasPrefix(m.status.Message(), "daemon unreachable") {
		m.status.Set("daemon is back: actions enabled")
	}
	m.header.SetSnapshot(&m.snap)
	m.fleet.SetSnapshot(&m.snap)
	m.table.SetRows(s.Rows)
	m.audit.SetEntries(s.Audit)
	if m.page == PageDetail {
		m.detail.SetDetail(s.Detail)
	}
}

func (m *Model) onEvents(msg eventsMsg) tea.Cmd {
	cmd := m.requestLoad()
	if msg.ch == nil {
		return tea.Batch(cmd, resubscribeCmd())
	}
	return tea.Batch(cmd, waitEventsCmd(msg.ch))
}

func (m *Model) onConfirmed(msg confirmedMsg) tea.Cmd {
	if m.daemon == nil || !m.snap.DaemonUp {
		m.status.SetError("daemon unreachable: " + strings.ToLower(actionVerb(msg.action)) + " " + msg.slug + " was not sent")
		return m.resume()
	}
	m.status.Set(fmt.Sprintf("%s %s: sending…", actionVerb(msg.action), msg.slug))
	return tea.Batch(actCmd(m.ctx, m.daemon, msg.slug, msg.action), m.resume())
}

func (m *Model) onActed(msg actedMsg) tea.Cmd {
	verb := strings.ToLower(actionVerb(msg.action))
	if msg.err != nil {
		m.status.SetError(fmt.Sprintf("%s %s failed: %v", verb, msg.slug, msg.err))
	} else {
		m.status.Set(fmt.Sprintf("%s %s: accepted by the daemon", verb, msg.slug))
	}
	return m.requestLoad()
}

// resize lays the panes out: header, body, status line, key help.
func (m *Model) resize(w, h int) {
	m.c.Width, m.c.Height = w, h
	body := m.bodyHeight()
	m.header.SetSize(w, headerHeight)
	for _, p := range []Component{m.table, m.detail, m.audit, m.fleet, m.help, m.confirm} {
		p.SetSize(w, body)
	}
	m.status.SetSize(w, 1)
}

func (m *Model) bodyHeight() int { return max(m.c.Height-headerHeight-2, 1) }

// View stacks the header, the page (with the dialog over it), the status
// line and one line of key help, in exactly the terminal's size.
func (m *Model) View() tea.View {
	m.syncStatus()
	body := m.active().View()
	if m.confirm.Open() {
		body = m.confirm.View()
	}
	help := m.c.Styles.Dim.Render(m.c.shortHelp(m.focused().ShortHelp()))
	out := lipgloss.JoinVertical(lipgloss.Left, m.header.View(), body, m.status.View(), fit(help, m.c.Width))
	v := tea.NewView(lines(out, m.c.Width, m.c.Height))
	v.AltScreen = true
	v.WindowTitle = "bottlecap dash"
	return v
}

// syncStatus copies what the status line reports from the other panes.
func (m *Model) syncStatus() {
	s := m.status
	s.sort, s.filter = m.table.Sort(), m.table.Filter()
	s.shown, s.total, s.hidden = len(m.table.Visible()), len(m.snap.Rows), m.table.Hidden()
	s.loadedAt, s.loaded, s.daemonUp = m.snap.Now, m.loaded, m.snap.DaemonUp
	s.paused = m.confirm.Open()
}

// active is the pane of the current page.
func (m *Model) active() Component {
	switch m.page {
	case PageDetail:
		return m.detail
	case PageAudit:
		return m.audit
	case PageFleet:
		return m.fleet
	case PageHelp:
		return m.help
	}
	return m.table
}

// focused is the pane that has the keyboard: the dialog when it is open.
func (m *Model) focused() Component {
	if m.confirm.Open() {
		return m.confirm
	}
	return m.active()
}
