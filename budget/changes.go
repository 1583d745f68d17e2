package budget

import (
	"maps"
	"reflect"
	"slices"
)

// SettingsChanges names what differs between two settings, by the keys of
// settings.yml: a top-level key ("warn_at", "operators"), or a key and the
// entry that changed under it when the key holds one per name
// ("budget.claude", "bottles.dev", "notify.ops"), sorted. None means
// nothing in force changed. A reload logs them.
func SettingsChanges(before, after *Settings) []string {
	var out []string
	for _, k := range settingsKeys {
		out = append(out, k.changed(before, after)...)
	}
	slices.Sort(out)
	return out
}

// settingsKey compares one top-level key of the settings.
type settingsKey struct {
	name    string
	changed func(a, b *Settings) []string
}

// settingsKeys are every key of Settings; a test holds the table to the
// struct, so that a new setting cannot be left out of what a reload says.
var settingsKeys = []settingsKey{
	perName("budget", func(s *Settings) Limits { return s.Budget }),
	whole("shutdown", func(s *Settings) any { return s.Shutdown }),
	whole("precedence", func(s *Settings) any { return s.Precedence }),
	whole("warn_at", func(s *Settings) any { return s.WarnAt }),
	perName("bottles", func(s *Settings) map[string]Defaults { return s.Bottles }),
	perName("agents", func(s *Settings) map[string]Defaults { return s.Agents }),
	perName("providers", func(s *Settings) map[string][]string { return s.Providers }),
	perName("weights", func(s *Settings) map[string]Weights { return s.Weights }),
	whole("operators", func(s *Settings) any { return s.Operators }),
	whole("socket", func(s *Settings) any { return s.Socket }),
	whole("allowance_ttl", func(s *Settings) any { return s.AllowanceTTL }),
	perName("rate", func(s *Settings) Rates { return s.Rate }),
	whole("rate_policy", func(s *Settings) any { return s.RatePolicy }),
	// By name: two loads of one zone are different pointers, and no
	// zone (nil) is UTC.
	whole("timezone", func(s *Settings) any { return s.Timezone.String() }),
	perName("notify", sinksByName),
	fleetKey,
}

// fleetKey names each fleet: setting that changed (fleet.postgres,
// fleet.budget.claude, …), the timezone by name as above.
var fleetKey = settingsKey{"fleet", func(a, b *Settings) []string {
	fa, fb := a.Fleet, b.Fleet
	if (fa == nil) != (fb == nil) {
		return []string{"fleet"}
	}
	if fa == nil {
		return nil
	}
	var out []string
	for _, k := range []struct {
		name   string
		va, vb any
	}{
		{"postgres", fa.Postgres, fb.Postgres},
		{"host", fa.Host, fb.Host},
		{"timezone", fa.Location().String(), fb.Location().String()},
		{"fail_open", fa.FailOpen, fb.FailOpen},
		{"lease", fa.Lease, fb.Lease},
	} {
		if !reflect.DeepEqual(k.va, k.vb) {
			out = append(out, "fleet."+k.name)
		}
	}
	budgets := perName("fleet.budget", func(s *Settings) Limits { return s.Fleet.Budget })
	return append(out, budgets.changed(a, b)...)
}}

// whole compares a key's value as one.
func whole(name string, get func(*Settings) any) settingsKey {
	return settingsKey{name, func(a, b *Settings) []string {
		if reflect.DeepEqual(get(a), get(b)) {
			return nil
		}
		return []string{name}
	}}
}

// perName compares a key that holds one entry per name, naming each entry
// added, removed or changed.
func perName[M ~map[string]V, V any](name string, get func(*Settings) M) settingsKey {
	return settingsKey{name, func(a, b *Settings) []string {
		ma, mb := get(a), get(b)
		var out []string
		for _, k := range slices.Sorted(maps.Keys(ma)) {
			if vb, ok := mb[k]; !ok || !reflect.DeepEqual(ma[k], vb) {
				out = append(out, name+"."+k)
			}
		}
		for k := range mb {
			if _, ok := ma[k]; !ok {
				out = append(out, name+"."+k)
			}
		}
		return out
	}}
}

// sinksByName is the notify: list keyed by its sinks' unique names.
func sinksByName(s *Settings) map[string]NotifySink {
	m := make(map[string]NotifySink, len(s.Notify))
	for _, sink := range s.Notify {
		m[sink.Name] = sink
	}
	return m
}
