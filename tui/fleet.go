package tui

import (
	"strings"
	"time"

	"github.com/bot-bottle/bottlecap/api"
)

// fleetTag is the fleet in the header's title line (SPEC section 14):
// this host's name, each fleet budget as this host knows it with what its
// lease still lets it spend, how many hosts there are and the worst
// shipping lag among them; or, while Postgres does not answer, that, in
// the error style. Nothing for a host alone.
func fleetTag(c *Common, fl *api.FleetStatus) string {
	if fl == nil {
		return ""
	}
	st := c.Styles
	parts := []string{"fleet " + fl.Host + ":"}
	for _, b := range fl.Budgets {
		used := "?"
		if b.Known {
			used = Tokens(b.Used)
		}
		style := st.Good
		if b.Exhausted || b.Remaining == 0 {
			style = st.Warn
		}
		parts = append(parts, b.Provider+" "+used+" / "+Tokens(b.Limit)+windowTag(b.Window)+" "+style.Render("host may spend "+Tokens(b.Remaining)))
	}
	var lag int64
	for _, h := range fl.Hosts {
		lag = max(lag, h.LagMS)
	}
	parts = append(parts, st.Dim.Render(hostsPhrase(len(fl.Hosts))+", lag "+(time.Duration(lag)*time.Millisecond).Round(100*time.Millisecond).String()))
	if !fl.Reachable {
		what := "spending its lease, then denying"
		if fl.FailOpen {
			what = "local budgets alone decide"
		}
		parts = append(parts, st.Error.Render("Postgres UNREACHABLE — "+what))
	}
	return strings.Join(parts, " ")
}

// hostsPhrase is "1 host", "3 hosts".
func hostsPhrase(n int) string {
	if n == 1 {
		return "1 host"
	}
	return Tokens(int64(n)) + " hosts"
}
