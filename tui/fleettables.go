package tui

// The fleet pane's two tables: the fleet budgets as this host knows them,
// and the fleet's hosts.

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/charmbracelet/x/ansi"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
)

// fleetCol is one column of the pane's two tables: a title and a width,
// right-aligned for figures.
type fleetCol struct {
	title string
	width int
	right bool
}

// fleetCell is one cell's text and, when set, its colour.
type fleetCell struct {
	text  string
	style func(...string) string
}

// plain is cells without colour.
func plain(texts ...string) []fleetCell {
	cells := make([]fleetCell, len(texts))
	for i, t := range texts {
		cells[i] = fleetCell{text: t}
	}
	return cells
}

// fleetRow renders cells in cols, one space apart, each coloured after it
// is fitted so that cutting it cannot cut an escape code.
func fleetRow(cols []fleetCol, cells []fleetCell) string {
	parts := make([]string, len(cols))
	for i, c := range cols {
		cell := fit(cells[i].text, c.width)
		if c.right {
			cell = fitRight(cells[i].text, c.width)
		}
		if cells[i].style != nil && cells[i].text != "" {
			cell = cells[i].style(cell)
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
	return st.ColHeader.Render(strings.TrimRight(fleetRow(cols, plain(titles...)), " "))
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
	lease := fleetCell{fleetLease(b), nil}
	if !b.LeaseLive && !b.SetAside && b.Ceiling > 0 {
		lease.style = st.Warn.Render
	}
	spend := fleetCell{Tokens(b.Remaining), st.Good.Render}
	if b.Exhausted || b.Remaining == 0 {
		spend.style = st.Warn.Render
	}
	cells := append(plain(Printable(b.Provider), knownTokens(b.Known, b.Used), Tokens(b.Limit), b.Window,
		knownTokens(b.Known, b.Limit-b.Used), Tokens(b.Held)), lease, spend)
	if withBar {
		cells = slices.Insert(cells, 1, f.usageBar(b, cols[1].width))
	}
	return fleetRow(cols, cells)
}

// usageBar is the fleet's usage of a budget as a bar, coloured as the
// header's are; blank until Postgres has said (USED shows "?").
func (f *FleetView) usageBar(b budget.FleetState, width int) fleetCell {
	if !b.Known {
		return fleetCell{}
	}
	pct := 100 * ratio(b.Used, b.Limit)
	style := f.c.Styles.Good.Render
	if pct >= f.snap.WarnAt*100 {
		style = f.c.Styles.Warn.Render
	}
	return fleetCell{bar(pct, width, false), style}
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
	var markStyle func(...string) string
	if mark != "" {
		markStyle = st.Title.Render
	}
	for i, p := range providers {
		cells := plain("", "", Printable(p), usedTokens(h.Used, p), f.hostLease(h, p), "", "")
		if i == 0 {
			cells[0], cells[1] = fleetCell{mark, markStyle}, fleetCell{cutHost(Printable(h.Host), cols[1].width), markStyle}
			cells[5].text, cells[6].text = lagText(h.LagMS), f.seen(h.LastSeen, cols[6].width)
		}
		if slices.Contains(h.Expired, p) {
			cells[4].style = st.Warn.Render
		}
		out = append(out, fleetRow(cols, cells))
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
