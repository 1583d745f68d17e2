package main

import (
	"fmt"
	"strings"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/settings"
)

// fleetCheck is the fleet `settings check` reports (SPEC section 14): what
// this host would join as, and where the DSN would come from, never the
// DSN itself, which may hold a password.
type fleetCheck struct {
	Host string `json:"host"`
	// HostFrom is "settings" (fleet.host) or "hostname" (the machine's).
	HostFrom string `json:"host_from"`
	// DSNFrom is "env" ($BOTTLECAP_FLEET_DSN, which wins over
	// fleet.postgres), "settings" (fleet.postgres) or "none".
	DSNFrom string `json:"dsn_from"`
	// DSNOverridesSettings is true when $BOTTLECAP_FLEET_DSN replaces a
	// fleet.postgres the file also has.
	DSNOverridesSettings bool          `json:"dsn_overrides_settings,omitempty"`
	Budget               budget.Limits `json:"budget"`
	Timezone             string        `json:"timezone"`
	FailOpen             bool          `json:"fail_open"`
	// Lease is fleet.lease; 0 leaves it to the daemon (a fiftieth of the
	// provider's smallest fleet limit).
	Lease int64 `json:"lease"`
}

// checkFleet sums up the fleet the settings and envDSN (the value of
// $BOTTLECAP_FLEET_DSN) make, with a warning when the daemon could not
// join it; nil for a host alone. The daemon's environment may differ from
// this shell's, so a missing or bad DSN is a warning, not a failure.
func checkFleet(s *budget.Settings, envDSN, hostname string) (*fleetCheck, []string) {
	if s.Fleet == nil && envDSN == "" {
		return nil, nil
	}
	f := s.Fleet
	if f == nil {
		f = &budget.Fleet{Budget: budget.Limits{}}
	}
	fc := &fleetCheck{Host: f.Host, HostFrom: "settings", DSNFrom: "none", Budget: f.Budget,
		Timezone: f.Location().String(), FailOpen: f.FailOpen, Lease: f.Lease}
	if fc.Host == "" {
		fc.Host, fc.HostFrom = hostname, "hostname"
	}
	switch {
	case envDSN != "":
		fc.DSNFrom, fc.DSNOverridesSettings = "env", f.Postgres != ""
	case f.Postgres != "":
		fc.DSNFrom = "settings"
	}
	var warnings []string
	if _, err := settings.ResolveFleet(s.Fleet, envDSN, hostname); err != nil {
		warnings = append(warnings, err.Error())
	}
	return fc, warnings
}

// summary is the fleet on one line.
func (fc *fleetCheck) summary() string {
	host := "fleet.host"
	if fc.HostFrom == "hostname" {
		host = "this machine's hostname"
	}
	dsn := "no DSN (set fleet.postgres or $" + settings.EnvFleetDSN + ")"
	switch {
	case fc.DSNFrom == "env" && fc.DSNOverridesSettings:
		dsn = "DSN from $" + settings.EnvFleetDSN + ", over fleet.postgres"
	case fc.DSNFrom == "env":
		dsn = "DSN from $" + settings.EnvFleetDSN
	case fc.DSNFrom == "settings":
		dsn = "DSN from fleet.postgres"
	}
	lease := "lease " + formatTokens(fc.Lease)
	if fc.Lease == 0 {
		lease = "lease default (a fiftieth of each provider's smallest fleet limit)"
	}
	return fmt.Sprintf("fleet: host %q (%s), %s, budget %s, timezone %s, fail_open %t, %s",
		fc.Host, host, dsn, fleetBudgetText(fc.Budget), fc.Timezone, fc.FailOpen, lease)
}

// fleetBudgetText is "claude 20M/month, codex 5M/day+50M/month", each
// amount exact as the file has it, or says there is none.
func fleetBudgetText(l budget.Limits) string {
	if len(l) == 0 {
		return "none (the fleet only ships usage)"
	}
	var parts []string
	for _, p := range sortedKeys(l) {
		parts = append(parts, p+" "+exactLimits(l[p]))
	}
	return strings.Join(parts, ", ")
}
