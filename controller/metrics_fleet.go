package controller

import (
	"context"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/prometheus/client_golang/prometheus"
)

// fleetCollector reports the fleet (SPEC section 14) at scrape time: each
// host's shipped usage, lease and shipping lag as the daemon last read
// them from Postgres, and this host's view of each fleet budget — its
// limits, the fleet's usage as known and what remains, with scope="fleet"
// on the book's own gauges — and its lease.
type fleetCollector struct {
	c     *Core
	hosts func(ctx context.Context) fleetHosts
}

// fleetHosts is what the collector needs of the fleet's view.
type fleetHosts struct {
	reachable bool
	hosts     []fleetHostRow
}

type fleetHostRow struct {
	host        string
	used, lease map[string]int64
	lagSeconds  float64
	lastSeen    float64 // unix seconds; 0 never seen
}

var (
	fleetHostUsedDesc  = prometheus.NewDesc("bottlecap_fleet_host_used_tokens", "Counted tokens each fleet host has shipped to Postgres, lifetime, by provider.", []string{"host", "provider"}, nil)
	fleetHostLeaseDesc = prometheus.NewDesc("bottlecap_fleet_host_lease_tokens", "Counted tokens each fleet host's lease still reserves of the fleet budget (its ceiling less what it shipped), by provider.", []string{"host", "provider"}, nil)
	fleetHostLagDesc   = prometheus.NewDesc("bottlecap_fleet_host_lag_seconds", "Age of each fleet host's oldest report not yet shipped to Postgres, as it last said (0: caught up).", []string{"host"}, nil)
	fleetHostSeenDesc  = prometheus.NewDesc("bottlecap_fleet_host_last_seen_timestamp_seconds", "When each fleet host last wrote to Postgres, unix seconds.", []string{"host"}, nil)
	fleetCeilingDesc   = prometheus.NewDesc("bottlecap_fleet_lease_ceiling_tokens", "This host's lease of a provider's fleet budget: the lifetime usage it may reach while the lease is live.", []string{"provider"}, nil)
	fleetLeaseRoomDesc = prometheus.NewDesc("bottlecap_fleet_lease_remaining_tokens", "What this host's lease still lets it grant: its ceiling less this host's lifetime usage and holds (0 when the lease is not live).", []string{"provider"}, nil)
	fleetReachDesc     = prometheus.NewDesc("bottlecap_fleet_postgres_reachable", "1 while the fleet's Postgres answers this daemon, else 0.", nil, nil)
)

func (f *fleetCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{fleetHostUsedDesc, fleetHostLeaseDesc, fleetHostLagDesc, fleetHostSeenDesc, fleetCeilingDesc, fleetLeaseRoomDesc, fleetReachDesc} {
		ch <- d
	}
}

func (f *fleetCollector) Collect(ch chan<- prometheus.Metric) {
	view := f.hosts(context.Background())
	reach := 0.0
	if view.reachable && f.c.FleetReachable() {
		reach = 1
	}
	ch <- prometheus.MustNewConstMetric(fleetReachDesc, prometheus.GaugeValue, reach)
	for _, h := range view.hosts {
		for p, n := range h.used {
			ch <- gauge(fleetHostUsedDesc, n, h.host, p)
		}
		for p, n := range h.lease {
			ch <- gauge(fleetHostLeaseDesc, n, h.host, p)
		}
		ch <- prometheus.MustNewConstMetric(fleetHostLagDesc, prometheus.GaugeValue, h.lagSeconds, h.host)
		if h.lastSeen > 0 {
			ch <- prometheus.MustNewConstMetric(fleetHostSeenDesc, prometheus.GaugeValue, h.lastSeen, h.host)
		}
	}
	f.collectBudgets(ch)
}

// collectBudgets sends this host's view of each fleet budget.
func (f *fleetCollector) collectBudgets(ch chan<- prometheus.Metric) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sweepLocked(c.now())
	for _, p := range c.book.FleetProviders() {
		for _, u := range c.book.FleetLimitUses(p) {
			ch <- gauge(usedDesc, u.Used, string(budget.ScopeFleet), "-", p, u.Window)
			ch <- gauge(limitDesc, u.Limit, string(budget.ScopeFleet), "-", p, u.Window)
			ch <- gauge(remainDesc, u.Remaining, string(budget.ScopeFleet), "-", p, u.Window)
		}
		st, _ := c.book.FleetState(p)
		ch <- gauge(heldDesc, st.Held, string(budget.ScopeFleet), "-", p)
		ch <- gauge(fleetCeilingDesc, st.Ceiling, p)
		ch <- gauge(fleetLeaseRoomDesc, st.LeaseRoom, p)
	}
}

// fleetHostsOf is the status's view of the hosts as the collector uses it.
func fleetHostsOf(st api.FleetStatus) fleetHosts {
	out := fleetHosts{reachable: st.Reachable}
	for _, h := range st.Hosts {
		row := fleetHostRow{host: h.Host, used: h.Used, lease: h.Lease, lagSeconds: float64(h.LagMS) / 1000}
		if !h.LastSeen.IsZero() {
			row.lastSeen = float64(h.LastSeen.UnixNano()) / 1e9
		}
		out.hosts = append(out.hosts, row)
	}
	return out
}
