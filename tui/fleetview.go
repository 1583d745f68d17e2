package tui

import (
	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/bot-bottle/bottlecap/api"
)

// FleetView is the fleet pane (F, SPEC section 14): whether Postgres
// answers and what this host does when it does not, each provider's fleet
// budget as this host knows it, and every host of the fleet with what it
// has shipped, what its lease reserves, its shipping lag and when it was
// last seen. It shows the daemon's status as the last refresh read it.
type FleetView struct {
	c      *Common
	snap   *Snapshot
	scroll scroller
}

// NewFleetView returns the fleet pane with nothing loaded.
func NewFleetView(c *Common) *FleetView {
	return &FleetView{c: c, snap: &Snapshot{}, scroll: scroller{keys: c.Keys}}
}

// SetSnapshot gives the pane the latest snapshot.
func (f *FleetView) SetSnapshot(s *Snapshot) { f.snap = s }

// Update scrolls.
func (f *FleetView) Update(msg tea.Msg) tea.Cmd {
	f.scroll.key(msg, len(f.content()))
	return nil
}

// SetSize gives the pane its box.
func (f *FleetView) SetSize(w, h int) { f.scroll.width, f.scroll.height = w, h }

// View renders the visible part of the pane.
func (f *FleetView) View() string { return f.scroll.window(f.content()) }

// ShortHelp is the fleet pane's keys.
func (f *FleetView) ShortHelp() []key.Binding { return f.c.Keys.reading() }

// FullHelp is every key, grouped.
func (f *FleetView) FullHelp() [][]key.Binding {
	k := f.c.Keys
	return [][]key.Binding{k.navigation(), k.views()}
}

// fleetUnknown says why a snapshot holds no fleet, or "" when it holds
// one: the pane shows it, and so does the status line when F is pressed.
func fleetUnknown(s *Snapshot) string {
	switch {
	case s.Fleet != nil:
		return ""
	case !s.DaemonUp:
		return "daemon unreachable: the fleet is unknown until it answers"
	case !s.StatusRead:
		return "the daemon shows its status only to operators: the fleet is unknown"
	}
	return "this daemon is not a fleet member (fleet: in settings, or $BOTTLECAP_FLEET_DSN)"
}

// content is every line of the pane.
func (f *FleetView) content() []string {
	if why := fleetUnknown(f.snap); why != "" {
		return f.styled(f.c.Styles.Warn.Render, why)
	}
	fl := f.snap.Fleet
	out := []string{f.title(fl)}
	out = append(out, f.postgres(fl)...)
	out = append(out, "")
	out = append(out, f.budgets(fl)...)
	out = append(out, "")
	return append(out, f.hosts(fl)...)
}

// fleetWidth is the width the pane lays itself out in: beyond it, more
// cells would only spread the columns apart.
const fleetWidth = 160

func (f *FleetView) width() int { return min(f.scroll.width, fleetWidth) }

// styled wraps text to the pane's width and styles each line (styling
// before wrapping would split a colour's escape codes across lines).
func (f *FleetView) styled(style func(...string) string, text string) []string {
	ls := wrapWords(text, f.width())
	for i, l := range ls {
		ls[i] = style(l)
	}
	return ls
}

// title names the fleet, this host and when the hosts were read.
func (f *FleetView) title(fl *api.FleetStatus) string {
	st := f.c.Styles
	read := "hosts not read yet"
	if !fl.ReadAt.IsZero() {
		read = "hosts read " + clock(fl.ReadAt.In(f.snap.Now.Location()))
	}
	return st.Title.Render("fleet of "+hostsPhrase(len(fl.Hosts))) + st.Dim.Render(" · * this host: ") +
		cutHost(Printable(fl.Host), 40) + st.Dim.Render(" · "+read)
}

// postgres says whether Postgres answers and what fail_open makes this
// host do while it does not, in words.
func (f *FleetView) postgres(fl *api.FleetStatus) []string {
	st := f.c.Styles
	var out []string
	if fl.Reachable {
		out = append(out, st.Good.Render("Postgres reachable"))
	} else {
		out = append(out, f.styled(st.Error.Render, "Postgres unreachable: "+orUnknown(Printable(fl.Error)))...)
	}
	return append(out, wrapWords(failOpenPhrase(fl), f.width())...)
}

// failOpenPhrase is fail_open and what it makes this host do without
// Postgres: now, or should Postgres stop answering.
func failOpenPhrase(fl *api.FleetStatus) string {
	when, until := "if Postgres stops answering, ", ""
	if !fl.Reachable {
		when, until = "", " until Postgres answers"
	}
	if fl.FailOpen {
		return "fail_open: true — " + when + "this host's local budgets alone decide" + until
	}
	return "fail_open: false — " + when + "this host spends what its lease has left, then denies the fleet budget" + until
}

// orUnknown is an error text, or says there was none to show.
func orUnknown(s string) string {
	if s == "" {
		return "no error recorded"
	}
	return s
}
