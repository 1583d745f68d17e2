package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/bot-bottle/bottlecap/api"
)

// printFleet writes the fleet this host belongs to (SPEC section 14):
// whether Postgres answers, this host's view of each fleet budget with
// its lease, and every host with its shipped usage, what its leases
// reserve and its shipping lag. Nothing for a host alone.
func printFleet(w io.Writer, st api.Status) error {
	fl := st.Fleet
	if fl == nil {
		return nil
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "fleet: this host is %s; %s\n", fl.Host, postgresLine(fl))
	if len(fl.Budgets) > 0 {
		b := newTable(w, "FLEET", "USED", "HELD", "LIMIT", "WINDOW", "LEFT", "LEASE", "HOST MAY SPEND")
		for _, f := range fl.Budgets {
			b.row(f.Provider, knownCell(f.Known, f.Used), formatTokens(f.Held), formatTokens(f.Limit), f.Window,
				knownCell(f.Known, f.Limit-f.Used), leaseCell(f.LeaseLive, f.Ceiling, f.SetAside), formatTokens(f.Remaining))
		}
		if err := b.flush(); err != nil {
			return err
		}
	}
	now := st.StartedAt.Add(time.Duration(st.UptimeSeconds * float64(time.Second)))
	h := newTable(w, "HOST", "USED", "LEASE", "LAG", "LAST SEEN")
	for _, host := range fl.Hosts {
		name := host.Host
		if name == fl.Host {
			name += " (this host)"
		}
		h.row(name, perProvider(host.Used, nil), perProvider(host.Lease, host.Expired), (time.Duration(host.LagMS) * time.Millisecond).String(),
			seenCell(now, host.LastSeen))
	}
	return h.flush()
}

// postgresLine says whether Postgres answers and what this host does
// when it does not.
func postgresLine(fl *api.FleetStatus) string {
	if fl.Reachable {
		return "Postgres reachable"
	}
	what := "the fleet budget is spent only from this host's lease, then denied (fail_open: false)"
	if fl.FailOpen {
		what = "local budgets alone decide (fail_open: true)"
	}
	return fmt.Sprintf("Postgres UNREACHABLE (%s): %s", fl.Error, what)
}

// knownCell is n, or "?" before the first read of Postgres.
func knownCell(known bool, n int64) string {
	if !known {
		return "?"
	}
	return formatTokens(max(n, 0))
}

// leaseCell is this host's lease ceiling, or why it has none to spend.
func leaseCell(live bool, ceiling int64, setAside bool) string {
	switch {
	case setAside:
		return "set aside"
	case live:
		return "to " + formatTokens(ceiling)
	case ceiling > 0:
		return "expired"
	}
	return "none"
}

// perProvider is "claude 12.3M, codex 1M" (a provider in marked gets
// " expired" after it), "-" when empty.
func perProvider(m map[string]int64, marked []string) string {
	var parts []string
	for _, p := range sortedKeys(m) {
		part := p + " " + formatTokens(m[p])
		for _, e := range marked {
			if e == p {
				part += " expired"
			}
		}
		parts = append(parts, part)
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

// seenCell is how long before now a host was last seen.
func seenCell(now, seen time.Time) string {
	if seen.IsZero() {
		return "never"
	}
	return max(now.Sub(seen), 0).Round(time.Second).String() + " ago"
}
