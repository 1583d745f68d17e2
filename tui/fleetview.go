package tui

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
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
func (f *FleetView) ShortHelp() []key.Binding {
	k := f.c.Keys
	return []key.Binding{k.Back, k.Up, k.Down, k.PageDown, k.Help, k.Quit}
}

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

// fleetCol is one column of the pane's two tables: a title and a width,
// right-aligned for figures.
type fleetCol struct {
	title string
	width int
	right bool
}

// fleetRow renders cells in cols, one space apart; style, when set, colours a
// cell after it is fitted.
func fleetRow(cols []fleetCol, cells []string, style map[int]func(...string) string) string {
	parts := make([]string, len(cols))
	for i, c := range cols {
		cell := fit(cells[i], c.width)
		if c.right {
			cell = fitRight(cells[i], c.width)
		}
		if s := style[i]; s != nil && strings.TrimSpace(cell) != "" {
			cell = s(cell)
		}
		parts[i] = cell
	}
	return strings.Join(parts, " ")
}

// fleetHeader renders the column titles.
func fleetHeader(st *Styles, cols []fleetCol) string {
	titles := make([]string, len(cols))
	for i, c := range cols {
		titles[i] = c.title
	}
	return st.ColHeader.Render(strings.TrimRight(fleetRow(cols, titles, nil), " "))
}

// providerWidth is the provider column: its widest name, within reason.
func providerWidth(names []string) int {
	w := len("PROVIDER")
	for _, n := range names {
		w = max(w, lipWidth(n))
	}
	return min(w, 16)
}

// budgets is this host's view of each provider's fleet budget, with a
// usage bar when the pane is wide enough for one.
func (f *FleetView) budgets(fl *api.FleetStatus) []string {
	st := f.c.Styles
	if len(fl.Budgets) == 0 {
		return []string{st.Dim.Render("no fleet budget in the settings: the fleet only ships usage")}
	}
	names := make([]string, len(fl.Budgets))
	for i, b := range fl.Budgets {
		names[i] = b.Provider
	}
	cols := []fleetCol{{"BUDGET", providerWidth(names), false}, {"USED", 6, true}, {"LIMIT", 6, true},
		{"WINDOW", 6, false}, {"LEFT", 6, true}, {"HELD", 6, true}, {"LEASE", 9, false}, {"HOST MAY SPEND", 14, true}}
	barW := min(f.width()-colsWidth(cols)-1, 30)
	if barW >= 8 {
		cols = slices.Insert(cols, 1, fleetCol{"USAGE", barW, false})
	}
	out := []string{fleetHeader(st, cols)}
	for _, b := range fl.Budgets {
		out = append(out, f.budgetRow(cols, b, barW >= 8))
	}
	return out
}

// budgetRow is one provider's fleet budget: "?" for what Postgres has
// not told this host yet.
func (f *FleetView) budgetRow(cols []fleetCol, b budget.FleetState, withBar bool) string {
	st := f.c.Styles
	cells := []string{Printable(b.Provider), knownTokens(b.Known, b.Used), Tokens(b.Limit), b.Window,
		knownTokens(b.Known, b.Limit-b.Used), Tokens(b.Held), fleetLease(b), Tokens(b.Remaining)}
	style := map[int]func(...string) string{7: st.Good.Render}
	if b.Exhausted || b.Remaining == 0 {
		style[7] = st.Warn.Render
	}
	if !b.LeaseLive && !b.SetAside && b.Ceiling > 0 {
		style[6] = st.Warn.Render
	}
	if withBar {
		pct := 100 * ratio(b.Used, b.Limit)
		cells = slices.Insert(cells, 1, bar(pct, cols[1].width, false))
		if !b.Known {
			cells[1] = "" // USED says "?"
		}
		style = shifted(style)
		style[1] = st.Good.Render
		if b.Exhausted {
			style[1] = st.Warn.Render
		}
	}
	return fleetRow(cols, cells, style)
}

// shifted moves every styled cell one column right, past an inserted one.
func shifted(style map[int]func(...string) string) map[int]func(...string) string {
	out := make(map[int]func(...string) string, len(style)+1)
	for i, s := range style {
		out[i+1] = s
	}
	return out
}

// knownTokens is n, or "?" before the first read of Postgres.
func knownTokens(known bool, n int64) string {
	if !known {
		return "?"
	}
	return Tokens(max(n, 0))
}

// fleetLease is this host's lease of a provider, or why it has none to
// spend from.
func fleetLease(b budget.FleetState) string {
	switch {
	case b.SetAside:
		return "set aside"
	case b.LeaseLive:
		return "to " + Tokens(b.Ceiling)
	case b.Ceiling > 0:
		return "expired"
	}
	return "none"
}

// colsWidth is the cells cols take, with the spaces between them.
func colsWidth(cols []fleetCol) int {
	n := len(cols) - 1
	for _, c := range cols {
		n += c.width
	}
	return n
}

// hosts is the fleet's hosts, one line per provider each used or holds a
// lease of; this host's lines are marked with '*'.
func (f *FleetView) hosts(fl *api.FleetStatus) []string {
	st := f.c.Styles
	if len(fl.Hosts) == 0 {
		return []string{st.Dim.Render("no host has written to Postgres yet")}
	}
	cols := f.hostColumns(fl)
	out := []string{fleetHeader(st, cols)}
	for _, h := range fl.Hosts {
		out = append(out, f.hostRows(cols, fl.Host, h)...)
	}
	return out
}

// hostColumns sizes the host list: the figures take what they need, the
// host column what is left up to its longest name, and a wide pane adds
// the clock time to LAST SEEN.
func (f *FleetView) hostColumns(fl *api.FleetStatus) []fleetCol {
	var names []string
	longest := len("HOST")
	for _, h := range fl.Hosts {
		names = append(names, hostProviders(h)...)
		longest = max(longest, lipWidth(Printable(h.Host)))
	}
	cols := []fleetCol{{"", 1, false}, {"HOST", 0, false}, {"PROVIDER", providerWidth(names), false},
		{"USED", 6, true}, {"LEASE", 13, false}, {"LAG", 7, true}, {"LAST SEEN", 9, true}}
	room := f.width() - colsWidth(cols)
	cols[1].width = max(min(longest, room), 4)
	if room-cols[1].width >= 11 {
		cols[6].width += 11 // "19:59:58 (2s ago)"
	}
	return cols
}

// hostProviders is every provider a host used or holds a lease of,
// sorted.
func hostProviders(h api.FleetHost) []string {
	var ps []string
	for p := range h.Used {
		ps = append(ps, p)
	}
	for p := range h.Lease {
		if _, ok := h.Used[p]; !ok {
			ps = append(ps, p)
		}
	}
	slices.Sort(ps)
	return ps
}

// hostRows is one host: its name, lag and last sighting on its first
// line, then one line per provider.
func (f *FleetView) hostRows(cols []fleetCol, self string, h api.FleetHost) []string {
	st := f.c.Styles
	mark := ""
	if h.Host == self {
		mark = "*"
	}
	providers := hostProviders(h)
	if len(providers) == 0 {
		providers = []string{"—"}
	}
	var out []string
	for i, p := range providers {
		cells := []string{"", "", Printable(p), usedTokens(h.Used, p), f.hostLease(h, p), "", ""}
		if i == 0 {
			cells[0], cells[1] = mark, cutHost(Printable(h.Host), cols[1].width)
			cells[5], cells[6] = lagText(h.LagMS), f.seen(h.LastSeen, cols[6].width)
		}
		style := map[int]func(...string) string{}
		if slices.Contains(h.Expired, p) {
			style[4] = st.Warn.Render
		}
		if mark != "" {
			style[0], style[1] = st.Title.Render, st.Title.Render
		}
		out = append(out, fleetRow(cols, cells, style))
	}
	return out
}

// usedTokens is a host's shipped usage of a provider, "—" for none.
func usedTokens(m map[string]int64, p string) string {
	if n, ok := m[p]; ok {
		return Tokens(n)
	}
	return "—"
}

// hostLease is what a host's lease of a provider reserves, marked when the
// lease expired without its host returning or renewing it.
func (f *FleetView) hostLease(h api.FleetHost, p string) string {
	n, ok := h.Lease[p]
	switch {
	case slices.Contains(h.Expired, p):
		return Tokens(n) + " expired"
	case !ok:
		return "—"
	}
	return Tokens(n)
}

// lagText is a shipping lag: "0" when caught up, milliseconds under a
// second, then tenths of seconds, then whole seconds.
func lagText(ms int64) string {
	d := time.Duration(ms) * time.Millisecond
	switch {
	case d <= 0:
		return "0"
	case d < time.Second:
		return d.String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// seen is how long before the snapshot a host was last seen ("2s ago",
// "3h12m ago"), with the clock time too when the column has room.
func (f *FleetView) seen(at time.Time, width int) string {
	if at.IsZero() {
		return "never"
	}
	d := max(f.snap.Now.Sub(at), 0)
	ago := fmt.Sprintf("%ds ago", int(d/time.Second))
	if d >= time.Minute {
		ago = eta(d) + " ago"
	}
	if full := clock(at.In(f.snap.Now.Location())) + " (" + ago + ")"; lipWidth(full) <= width {
		return full
	}
	return ago
}

// cutHost fits a host name in width cells, keeping both ends of what
// tells a fleet's hosts apart. A name without a domain is cut in its
// middle as slugs are (cutMiddle). A name with one keeps its short name
// whole and cuts into the domain, which the fleet's hosts mostly share
// ("runner-0017…example.internal"); a short name too long for that is
// itself cut as a slug and the domain left out ("ci-run…pool-a-0017…").
func cutHost(s string, width int) string {
	dot := strings.IndexByte(s, '.')
	if lipWidth(s) <= width || dot <= 0 || width <= 2 {
		return cutMiddle(s, width)
	}
	short, domain := s[:dot], s[dot:]
	if room := width - lipWidth(short) - 1; room > 0 {
		return short + "…" + ansi.TruncateLeft(domain, lipWidth(domain)-room, "")
	}
	return cutMiddle(short, width-1) + "…"
}
