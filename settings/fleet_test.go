package settings_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/settings"
)

func TestFleetAbsentIsAHostAlone(t *testing.T) {
	if s := parse(t, "budget:\n  claude: 5M"); s.Fleet != nil {
		t.Errorf("Fleet = %+v without a fleet: section, want nil", s.Fleet)
	}
}

func TestFleetSection(t *testing.T) {
	s := parse(t, `fleet:
  postgres: postgres://bottlecap@db.internal:5432/bottlecap
  host: build-box-1
  timezone: Europe/Berlin
  budget:
    claude: 20M/month
    codex: [5M/day, 50M/month]
  fail_open: true
  lease: 50k
`)
	f := s.Fleet
	if f == nil {
		t.Fatal("Fleet is nil")
	}
	if f.Postgres != "postgres://bottlecap@db.internal:5432/bottlecap" || f.Host != "build-box-1" ||
		f.Timezone.String() != "Europe/Berlin" || !f.FailOpen || f.Lease != 50_000 {
		t.Errorf("got %+v", f)
	}
	if got, want := f.Budget.String(), "claude=20000000/month codex=5000000/day+50000000/month"; got != want {
		t.Errorf("budget %s, want %s", got, want)
	}
}

func TestFleetDefaults(t *testing.T) {
	f := parse(t, "fleet:\n  postgres: host=db dbname=bottlecap\n").Fleet
	if f == nil {
		t.Fatal("Fleet is nil")
	}
	if f.Host != "" || f.Timezone != time.UTC || f.FailOpen || f.Lease != 0 || len(f.Budget) != 0 {
		t.Errorf("defaults %+v, want host unset (the hostname), UTC, fail closed, lease 0, no budget", f)
	}
	if empty := parse(t, "fleet:\n").Fleet; empty == nil || empty.Postgres != "" {
		t.Errorf("an empty fleet: gave %+v, want a fleet of the defaults", empty)
	}
}

func TestFleetErrors(t *testing.T) {
	checkErrors(t, []errCase{
		{"fleet:\n  postgres: db.internal", 2, 13, "fleet.postgres", "not a Postgres DSN"},
		{"fleet:\n  postgres: mysql://db/x", 2, 13, "fleet.postgres", `the DSN's scheme "mysql" is not postgres`},
		{"fleet:\n  postgres: \"postgres://a b@%zz/x\"", 2, 13, "fleet.postgres", "not a valid URL"},
		{"fleet:\n  postgres:", 2, 3, "fleet.postgres", "missing value"},
		{"fleet:\n  host: build box", 2, 9, "fleet.host", `"build box" is not a fleet host name`},
		{"fleet:\n  host: -x", 2, 9, "fleet.host", `"-x" is not a fleet host name`},
		{"fleet:\n  timezone: Mars/Olympus", 2, 13, "fleet.timezone", "is not a timezone"},
		{"fleet:\n  budget:\n    claude: 5M/fortnight", 3, 16, "fleet.budget.claude", `"fortnight" is not a window`},
		{"fleet:\n  budget:\n    claude: [5M/day, 6M/day]", 3, 13, "fleet.budget.claude", "two limits for the same window"},
		{"fleet:\n  budget:\n    Bad Name: 5M", 3, 5, "fleet.budget.Bad Name", "is not a provider name"},
		{"fleet:\n  fail_open: maybe", 2, 14, "fleet.fail_open", `"maybe" is not a boolean (want true or false)`},
		{"fleet:\n  fail_open: \"true\"", 2, 14, "fleet.fail_open", "is not a boolean"},
		{"fleet:\n  lease: 5Q", 2, 10, "fleet.lease", `"5Q" is not a token amount`},
		{"fleet:\n  lease: 0", 2, 10, "fleet.lease", "a lease of 0 tokens"},
		{"fleet:\n  leases: 5k", 2, 3, "fleet.leases", `unknown key "leases" (want postgres, host, timezone, budget, fail_open or lease)`},
		{"fleet: postgres://db/x", 1, 8, "fleet", "want a mapping"},
	})
}

func TestResolveFleet(t *testing.T) {
	file := &budget.Fleet{Postgres: "postgres://file@db/x", Timezone: time.UTC, Budget: budget.Limits{"claude": budget.Lifetime(5)}}
	tests := []struct {
		name              string
		f                 *budget.Fleet
		env, hostname     string
		wantNil           bool
		wantDSN, wantHost string
	}{
		{"neither: a host alone", nil, "", "box", true, "", ""},
		{"the file's", file, "", "box", false, "postgres://file@db/x", "box"},
		{"the environment over the file", file, "postgres://env@db/y", "box", false, "postgres://env@db/y", "box"},
		{"the environment alone", nil, "host=db dbname=y", "box", false, "host=db dbname=y", "box"},
		{"the file's host over the hostname", &budget.Fleet{Postgres: "host=db", Host: "ci-1"}, "", "box", false, "host=db", "ci-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := settings.ResolveFleet(tt.f, tt.env, tt.hostname)
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantNil {
				if got != nil {
					t.Errorf("got %+v, want nil", got)
				}
				return
			}
			if got == nil || got.Postgres != tt.wantDSN || got.Host != tt.wantHost {
				t.Errorf("got %+v, want DSN %q host %q", got, tt.wantDSN, tt.wantHost)
			}
		})
	}
	if file.Host != "" || file.Postgres != "postgres://file@db/x" {
		t.Errorf("ResolveFleet modified the settings' fleet: %+v", file)
	}
}

func TestResolveFleetErrors(t *testing.T) {
	tests := []struct {
		name          string
		f             *budget.Fleet
		env, hostname string
		want          string
	}{
		{"no DSN anywhere", &budget.Fleet{}, "", "box", "no postgres: DSN"},
		{"a bad environment DSN", nil, "db.internal", "box", "$BOTTLECAP_FLEET_DSN: not a Postgres DSN"},
		{"an unusable hostname", &budget.Fleet{Postgres: "host=db"}, "", "", "set fleet.host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := settings.ResolveFleet(tt.f, tt.env, tt.hostname)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, budget.ErrInvalid) {
				t.Errorf("got %+v, %v; want an invalid error containing %q", got, err, tt.want)
			}
		})
	}
}
