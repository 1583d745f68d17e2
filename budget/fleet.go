package budget

import "time"

// Fleet is the fleet: section of settings (SPEC section 14): one budget
// shared by the daemons of several hosts through Postgres. A nil *Fleet is
// a host alone, which needs no server.
type Fleet struct {
	// Postgres is the DSN of the fleet's database (a postgres:// URL or
	// keyword=value pairs); $BOTTLECAP_FLEET_DSN overrides it. It may hold
	// a password, so it is never logged nor shown.
	Postgres string
	// Host names this daemon in the fleet; "" is the machine's hostname,
	// which the wiring fills in (budget does no I/O).
	Host string
	// Timezone is where the fleet's calendar windows start at 00:00 on
	// every host alike, so two hosts in different zones share one day.
	Timezone *time.Location
	// Budget is the fleet's limit per provider, windows allowed.
	Budget Limits
	// FailOpen lets a host that cannot reach Postgres spend past its
	// lease against its local scopes only (the default fails closed).
	FailOpen bool
	// Lease is the tokens a host asks for per lease request; 0 lets the
	// lease code choose.
	Lease int64
}

// Clone is a copy that shares nothing mutable with f.
func (f *Fleet) Clone() *Fleet {
	if f == nil {
		return nil
	}
	c := *f
	c.Budget = f.Budget.Clone()
	return &c
}

// Location is the fleet windows' timezone (UTC when unset).
func (f *Fleet) Location() *time.Location {
	if f == nil || f.Timezone == nil {
		return time.UTC
	}
	return f.Timezone
}
