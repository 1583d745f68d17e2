package tui

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
)

// DetailView shows one bottle: its figures, a sparkline of recent usage,
// the usage per agent and provider with the budget governing each, its
// recent reports and its audit trail.
type DetailView struct {
	c      *Common
	slug   string
	detail *Detail
	scroll scroller
}

// NewDetailView returns a detail pane showing nothing.
func NewDetailView(c *Common) *DetailView {
	return &DetailView{c: c, scroll: scroller{keys: c.Keys}}
}

// Show switches the pane to a bottle; its data arrives with the next
// snapshot.
func (d *DetailView) Show(slug string) {
	if slug != d.slug {
		d.slug, d.detail, d.scroll.offset = slug, nil, 0
	}
}

// Slug is the bottle shown.
func (d *DetailView) Slug() string { return d.slug }

// SetDetail gives the pane the snapshot's detail (nil while loading or
// when the bottle is gone).
func (d *DetailView) SetDetail(det *Detail) {
	if det != nil && det.Row.Slug != d.slug {
		return // a snapshot loaded for a bottle shown before
	}
	d.detail = det
}

// Update scrolls.
func (d *DetailView) Update(msg tea.Msg) tea.Cmd {
	d.scroll.key(msg, len(d.content()))
	return nil
}

// SetSize gives the pane its box.
func (d *DetailView) SetSize(w, h int) { d.scroll.width, d.scroll.height = w, h }

// View renders the visible part of the content.
func (d *DetailView) View() string { return d.scroll.window(d.content()) }

func (d *DetailView) content() []string {
	if d.detail == nil {
		return []string{d.c.Styles.Dim.Render("loading " + d.slug + "…")}
	}
	det := d.detail
	out := d.summary(det.Row)
	out = append(out, fmt.Sprintf("last %s  ▕%s▏ %s per cell",
		shortDur(det.SeriesStep*time.Duration(len(det.Series))), sparkline(det.Series), shortDur(det.SeriesStep)), "")
	out = append(out, d.breakdown(det.Breakdown)...)
	out = append(out, d.limits(det.Limits)...)
	out = append(out, "", d.c.Styles.ColHeader.Render("RECENT REPORTS"))
	out = append(out, reportLines(det.Reports)...)
	out = append(out, "", d.c.Styles.ColHeader.Render("AUDIT TRAIL"))
	out = append(out, auditLines(det.Audit, false, d.scroll.width)...)
	return out
}

func (d *DetailView) summary(r Row) []string {
	st := d.c.Styles
	title := []string{st.Title.Render(r.Slug) + "  " + st.state(r.State, lipWidth(stateText(r.State)))}
	if r.Reason != "" {
		// The reason follows on the title line, or wraps below it.
		reason := Printable(r.Reason)
		if w := lipWidth(title[0]) + 2 + lipWidth(reason); w <= d.scroll.width {
			title[0] += "  " + reason
		} else {
			title = append(title, wrapIndented(reason, 2, d.scroll.width)...)
		}
	}
	who := []string{"agent " + orDash(r.Agent), "name " + orDash(r.Name), "parent " + orDash(r.Parent),
		"providers " + orDash(strings.Join(r.Providers, ", "))}
	gov, pace := "governed by nothing: no budget limits it", "burn "+burnRate(r.Burn)
	if !r.Unlimited && r.Provider != "" {
		gov = fmt.Sprintf("governed by the %s (%s): %s, %s", r.Scope, r.Provider,
			usedOfLimit(r.Used, r.Limit, false)+windowTag(r.Window), percent(r.Percent, false))
		if rs := resetsPhrase(r.ResetsAt); rs != "" {
			gov += ", " + rs
		}
		pace += " · " + etaPhrase(r.ETA)
	}
	if stopped(r.State) {
		pace = "stopped: no burn rate, no time to exhaustion"
	}
	return append(title, strings.Join(who, " · "), gov, pace)
}

func (d *DetailView) breakdown(us []AgentUsage) []string {
	head := fmt.Sprintf("%-12s %-8s %7s %7s  %-16s %13s %5s", "AGENT", "PROVIDER", "OWN", "REPORTS", "GOVERNED BY", "USED / LIMIT", "%")
	out := []string{d.c.Styles.ColHeader.Render(head)}
	if len(us) == 0 {
		return append(out, d.c.Styles.Dim.Render("no usage yet"))
	}
	for _, u := range us {
		v := u.Verdict
		pct := percent(100*fraction(v), v.Unlimited)
		out = append(out, fmt.Sprintf("%-12s %-8s %7s %7d  %-16s %13s %5s", fit(u.Agent, 12), fit(u.Provider, 8),
			Tokens(u.Own), u.Reports, fit(scopeFit(v.Scope, "", 16), 16), usedOfLimit(v.Used, v.Limit, v.Unlimited), pct))
	}
	return out
}

// limits lists every limit over the bottle with its window, when one has
// a window (a lifetime limit is all in the lines above).
func (d *DetailView) limits(ls []budget.LimitUse) []string {
	windowed := false
	for _, l := range ls {
		windowed = windowed || l.Window != "life"
	}
	if !windowed {
		return nil
	}
	head := fmt.Sprintf("%-8s %-16s %-6s %13s %5s  %s", "PROVIDER", "LIMIT", "WINDOW", "USED / LIMIT", "%", "RESETS")
	out := []string{"", d.c.Styles.ColHeader.Render(head)}
	for _, l := range ls {
		resets := resetsPhrase(l.ResetsAt)
		if resets == "" && l.Window != "life" {
			resets = "rolling"
		}
		out = append(out, fmt.Sprintf("%-8s %-16s %-6s %13s %5s  %s", fit(l.Provider, 8), fit(scopeFit(l.Scope, "", 16), 16), fit(l.Window, 6),
			usedOfLimit(l.Used, l.Limit, false), percent(100*ratio(l.Used, l.Limit), false), resets))
	}
	return out
}

// reportLines lists reports, newest first.
func reportLines(rs []budget.Report) []string {
	if len(rs) == 0 {
		return []string{"none"}
	}
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		l := fmt.Sprintf("%s  %-12s %-8s %-20s %7s in %6s out", clock(r.TS), fit(r.Agent, 12), fit(r.Provider, 8),
			fit(orDash(Printable(r.Model)), 20), Tokens(r.Counted), Tokens(r.Output))
		if !r.Complete {
			l += "  (incomplete stream)"
		}
		out = append(out, l)
	}
	return out
}

// auditLines lists audit entries in width cells; withBottle adds the
// bottle column for the host-wide log. A detail longer than its column
// wraps under it, so every entry reads whole at any width.
func auditLines(es []api.AuditEntry, withBottle bool, width int) []string {
	if len(es) == 0 {
		return []string{"none"}
	}
	cols := newAuditColumns(es, withBottle)
	out := make([]string, 0, len(es))
	for _, e := range es {
		out = append(out, cols.entry(e, width)...)
	}
	return out
}

// auditColumns are the widths of an audit list's fixed columns.
type auditColumns struct {
	seq        int
	withBottle bool
}

// auditKindWidth fits the longest kind the daemon writes (action_pending).
const (
	auditKindWidth   = 14
	auditBottleWidth = 17
	auditTimeLayout  = "01-02 15:04:05"
)

func newAuditColumns(es []api.AuditEntry, withBottle bool) auditColumns {
	c := auditColumns{seq: 3, withBottle: withBottle}
	for _, e := range es {
		c.seq = max(c.seq, len(strconv.FormatInt(e.Seq, 10)))
	}
	return c
}

// header is the column titles over the entries.
func (c auditColumns) header() string {
	h := fmt.Sprintf("%*s %-*s %-*s ", c.seq, "SEQ", len(auditTimeLayout), "TIME", auditKindWidth, "KIND")
	if c.withBottle {
		h += fmt.Sprintf("%-*s ", auditBottleWidth, "BOTTLE")
	}
	return h + "DETAIL"
}

// entry is one entry's lines: its columns and detail, the detail wrapped
// under its column, or below the entry, indented, when the column would
// be too narrow to read.
func (c auditColumns) entry(e api.AuditEntry, width int) []string {
	l := fmt.Sprintf("%*d %s %s ", c.seq, e.Seq, e.TS.Format(auditTimeLayout), fit(e.Kind, auditKindWidth))
	if c.withBottle {
		l += fit(cutMiddle(orDash(e.Bottle), auditBottleWidth), auditBottleWidth) + " "
	}
	detail := Printable(e.Detail)
	indent := lipWidth(l)
	if width-indent < 24 {
		return append([]string{strings.TrimRight(l, " ")}, wrapIndented(detail, 4, width)...)
	}
	ls := wrapIndented(detail, indent, width)
	ls[0] = l + strings.TrimLeft(ls[0], " ")
	return ls
}

// wrapIndented wraps text to width cells, every line indented by indent.
func wrapIndented(text string, indent, width int) []string {
	pad := strings.Repeat(" ", indent)
	ls := wrapWords(text, width-indent)
	for i := range ls {
		ls[i] = pad + ls[i]
	}
	return ls
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// shortDur prints a whole duration without trailing zero units: 30m, 1m.
func shortDur(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	return s
}

// ShortHelp is the detail pane's keys.
func (d *DetailView) ShortHelp() []key.Binding {
	k := d.c.Keys
	return append([]key.Binding{k.Back, k.Up, k.Down, k.Audit, k.Fleet, k.Help, k.Quit}, k.actions()...)
}

// FullHelp is every key, grouped.
func (d *DetailView) FullHelp() [][]key.Binding {
	k := d.c.Keys
	return [][]key.Binding{k.navigation(), k.views(), k.actions()}
}

// etaPhrase says when the governing budget runs out, in words.
func etaPhrase(d time.Duration) string {
	switch {
	case d == 0:
		return "exhausted"
	case d < 0:
		return "no exhaustion in sight"
	}
	return "exhausted in " + eta(d)
}
