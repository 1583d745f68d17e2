package budget_test

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
)

func TestSettingsChanges(t *testing.T) {
	tests := []struct {
		name   string
		change func(s *budget.Settings)
		want   []string
	}{
		{"nothing", func(*budget.Settings) {}, nil},
		{"a global limit raised", func(s *budget.Settings) { s.Budget["claude"] = budget.Lifetime(2_000_000) }, []string{"budget.claude"}},
		{"a global limit added", func(s *budget.Settings) { s.Budget["codex"] = budget.Lifetime(1) }, []string{"budget.codex"}},
		{"a global limit removed", func(s *budget.Settings) { delete(s.Budget, "claude") }, []string{"budget.claude"}},
		{"a bottle's policy", func(s *budget.Settings) {
			s.Bottles["dev"] = budget.Defaults{Budget: budget.Limits{"claude": budget.Lifetime(10)}, Shutdown: budget.Kill}
		}, []string{"bottles.dev"}},
		{"warn_at and operators", func(s *budget.Settings) { s.WarnAt, s.Operators = 0.9, []string{"0"} }, []string{"operators", "warn_at"}},
		{"a sink's events", func(s *budget.Settings) { s.Notify[0].Events = []budget.NoticeKind{budget.NoticeWarn} }, []string{"notify.ops"}},
		{"a sink added", func(s *budget.Settings) {
			s.Notify = append(s.Notify, budget.NotifySink{Name: "pager", Exec: []string{"/bin/true"}})
		}, []string{"notify.pager"}},
		{"the allowance TTL", func(s *budget.Settings) { s.AllowanceTTL = time.Minute }, []string{"allowance_ttl"}},
		{"a rate guard", func(s *budget.Settings) { s.Rate = budget.Rates{"claude": 1} }, []string{"rate.claude"}},
		{"the timezone", func(s *budget.Settings) { s.Timezone = time.FixedZone("CET", 3600) }, []string{"timezone"}},
		{"the same timezone loaded again", func(s *budget.Settings) { s.Timezone = time.FixedZone("UTC", 0) }, nil},
		{"a fleet added", func(s *budget.Settings) { s.Fleet = &budget.Fleet{Postgres: "host=db"} }, []string{"fleet"}},
		{"a fleet's budget and host", func(s *budget.Settings) {
			s.Fleet = fleetFixture()
			s.Fleet.Host, s.Fleet.Budget["codex"] = "ci-2", budget.Lifetime(1)
		}, []string{"fleet.budget.codex", "fleet.host"}},
		{"a fleet's timezone, DSN and fail_open", func(s *budget.Settings) {
			s.Fleet = fleetFixture()
			s.Fleet.Timezone, s.Fleet.Postgres, s.Fleet.FailOpen = time.FixedZone("CET", 3600), "host=db2", true
		}, []string{"fleet.fail_open", "fleet.postgres", "fleet.timezone"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, after := changesFixture(), changesFixture()
			if strings.HasPrefix(tt.name, "a fleet's") {
				before.Fleet = fleetFixture()
			}
			tt.change(after)
			if got := budget.SettingsChanges(before, after); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("SettingsChanges = %q, want %q", got, tt.want)
			}
		})
	}
}

func fleetFixture() *budget.Fleet {
	return &budget.Fleet{Postgres: "host=db", Host: "ci-1", Budget: budget.Limits{"claude": budget.Lifetime(9)}}
}

func changesFixture() *budget.Settings {
	s := budget.DefaultSettings()
	s.Budget["claude"] = budget.Lifetime(1_000_000)
	s.Bottles["dev"] = budget.Defaults{Budget: budget.Limits{"claude": budget.Lifetime(10)}}
	s.Notify = []budget.NotifySink{{Name: "ops", Webhook: "http://127.0.0.1:9/hook"}}
	return s
}

// TestSettingsChangesCoverEverySetting holds SettingsChanges' table to the
// Settings struct: a setting added without a row would reload unnoticed.
func TestSettingsChangesCoverEverySetting(t *testing.T) {
	if n, keys := reflect.TypeFor[budget.Settings]().NumField(), budget.SettingsKeys(); n != len(keys) {
		t.Errorf("Settings has %d fields, SettingsChanges compares %d keys (%q): add a row for the new setting", n, len(keys), keys)
	}
	if keys := budget.SettingsKeys(); len(slices.Compact(slices.Sorted(slices.Values(keys)))) != len(keys) {
		t.Errorf("SettingsChanges compares a key twice: %q", keys)
	}
}

func TestSinkWants(t *testing.T) {
	all := budget.NotifySink{Name: "all"}
	some := budget.NotifySink{Name: "some", Events: []budget.NoticeKind{budget.NoticeCrossing, budget.NoticeActionFailed}}
	for _, k := range budget.NoticeKinds {
		if !all.Wants(k) {
			t.Errorf("a sink with no events: Wants(%s) = false, want every kind", k)
		}
		if got, want := some.Wants(k), k == budget.NoticeCrossing || k == budget.NoticeActionFailed; got != want {
			t.Errorf("a sink of crossing and action_failed: Wants(%s) = %v, want %v", k, got, want)
		}
	}
}
