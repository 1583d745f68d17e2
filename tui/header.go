package tui

import (
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
)

// headerHeight is the lines the header takes: title, providers.
const headerHeight = 2

// Header shows the title, the daemon's reachability and the host-wide
// usage of every provider against the global budget.
type Header struct {
	c      *Common
	snap   *Snapshot
	loaded bool
	width  int
}

// NewHeader returns a header with nothing loaded yet.
func NewHeader(c *Common) *Header { return &Header{c: c, snap: &Snapshot{}} }

// SetSnapshot gives the header the latest snapshot.
func (h *Header) SetSnapshot(s *Snapshot) { h.snap, h.loaded = s, true }

// Update does nothing: the header only displays.
func (h *Header) Update(tea.Msg) tea.Cmd { return nil }

// SetSize gives the header its width; its height is fixed.
func (h *Header) SetSize(w, _ int) { h.width = w }

// View renders the title line and the providers line.
func (h *Header) View() string {
	return lines(h.title()+"\n"+h.providers(), h.width, headerHeight)
}

func (h *Header) title() string {
	st := h.c.Styles
	parts := []string{st.Title.Render("bottlecap dash")}
	switch {
	case !h.loaded:
		parts = append(parts, st.Dim.Render("loading…"))
	case h.snap.DaemonUp:
		parts = append(parts, st.Good.Render("daemon: up"))
	default:
		parts = append(parts, st.Error.Render("daemon: UNREACHABLE — store only, actions disabled"))
	}
	if f := fleetTag(h.c, h.snap.Fleet); f != "" {
		parts = append(parts, f)
	}
	if h.c.ReadOnly {
		parts = append(parts, st.Warn.Render("[read-only]"))
	}
	if h.c.Banner != "" {
		parts = append(parts, st.Warn.Render(h.c.Banner))
	}
	left := strings.Join(parts, "  ")
	right := st.Dim.Render(h.c.Now().Format("2006-01-02 15:04:05"))
	return spread(left, right, h.width)
}

// providers is one "name bar used / limit pct" group per provider.
func (h *Header) providers() string {
	if len(h.snap.Providers) == 0 {
		return h.c.Styles.Dim.Render("no usage and no global budget yet")
	}
	groups := make([]string, 0, len(h.snap.Providers))
	for _, p := range h.snap.Providers {
		g := p.Provider + " " + usedOfLimit(p.Used, p.Limit, p.Unlimited)
		if !p.Unlimited {
			pct := 100 * ratio(p.Used, p.Limit)
			style := h.c.Styles.Good
			if pct >= h.snap.WarnAt*100 {
				style = h.c.Styles.Warn
			}
			g = p.Provider + " " + style.Render(bar(pct, 8, false)) + " " +
				usedOfLimit(p.Used, p.Limit, false) + windowTag(p.Window) + " " + percent(pct, false)
			if r := resetsPhrase(p.ResetsAt); r != "" {
				g += " " + h.c.Styles.Dim.Render(r)
			}
		}
		if p.Held > 0 {
			g += " " + h.c.Styles.Dim.Render("held "+Tokens(p.Held))
		}
		if p.Burn > 0 {
			g += " " + burnRate(p.Burn)
		}
		groups = append(groups, g)
	}
	return strings.Join(groups, h.c.Styles.Dim.Render(" │ "))
}

// ShortHelp has nothing: the header takes no keys.
func (h *Header) ShortHelp() []key.Binding { return nil }

// FullHelp has nothing: the header takes no keys.
func (h *Header) FullHelp() [][]key.Binding { return nil }

// spread puts left and right on one line of width cells.
func spread(left, right string, width int) string {
	gap := width - lipWidth(left) - lipWidth(right)
	if gap < 1 {
		return left
	}
	return left + strings.Repeat(" ", gap) + right
}
