package budget

import "time"

// Settings are the host settings of SPEC section 3, as parsed from
// settings.yml over the built-in defaults.
type Settings struct {
	// Budget is the global host budget per provider.
	Budget Limits
	// Shutdown is the default policy.
	Shutdown Policy
	// Precedence decides which scopes apply.
	Precedence Precedence
	// WarnAt is the warn threshold as a fraction of a limit (0.8 = 80%).
	WarnAt float64
	// Bottles holds defaults by bot-bottle bottle (manifest) name.
	Bottles map[string]Defaults
	// Agents holds defaults by agent name.
	Agents map[string]Defaults
	// Providers maps each provider to its upstream hosts.
	Providers map[string][]string
	// Weights are per-provider token weights.
	Weights map[string]Weights
	// Operators are uids (as decimal strings) and group names that may act.
	Operators []string
	// Socket overrides the socket path (default $BOT_BOTTLE_HOME/run/bottlecap.sock).
	Socket string
	// AllowanceTTL is how long an allowance lives without being renewed
	// (SPEC section 11): a meter that dies leaks its holds no longer.
	AllowanceTTL time.Duration
	// Rate is the default rate guard of every bottle (SPEC section 12),
	// tokens per minute per provider; RatePolicy is what a tripped guard
	// does (Pause by default).
	Rate       Rates
	RatePolicy Policy
	// Timezone is where calendar windows (day, week, month) start at
	// 00:00 (SPEC section 12): UTC unless settings name an IANA zone.
	Timezone *time.Location
	// Notify are the notification sinks (SPEC section 13).
	Notify []NotifySink
	// Fleet shares budgets with other hosts (SPEC section 14); nil when
	// this host is alone.
	Fleet *Fleet
}

// DefaultAllowanceTTL is AllowanceTTL when settings do not say.
const DefaultAllowanceTTL = 30 * time.Second

// Defaults are the budget, policy and rate guard settings give a bottle
// or agent name.
type Defaults struct {
	Budget   Limits
	Shutdown Policy
	Rate     Rates
}

// DefaultSettings are the settings in force when there is no settings file.
func DefaultSettings() *Settings {
	return &Settings{
		Budget:     Limits{},
		Shutdown:   Cutoff,
		Precedence: Nearest,
		WarnAt:     0.8,
		Bottles:    map[string]Defaults{},
		Agents:     map[string]Defaults{},
		Providers:  DefaultProviders(),
		Weights:    map[string]Weights{},

		AllowanceTTL: DefaultAllowanceTTL,
		Rate:         Rates{},
		RatePolicy:   Pause,
		Timezone:     time.UTC,
	}
}

// location is the timezone of calendar windows (UTC when unset).
func (s *Settings) location() *time.Location {
	if s.Timezone == nil {
		return time.UTC
	}
	return s.Timezone
}

// ProviderForHost attributes an upstream host to a provider, or returns "".
func (s *Settings) ProviderForHost(host string) string {
	for p, hosts := range s.Providers {
		for _, h := range hosts {
			if h == host {
				return p
			}
		}
	}
	return ""
}

// WeightsFor returns the weights of a provider (unit weights by default).
func (s *Settings) WeightsFor(provider string) Weights {
	if w, ok := s.Weights[provider]; ok {
		return w
	}
	return UnitWeights
}
