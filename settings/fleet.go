package settings

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
)

// EnvFleetDSN names the environment variable whose DSN overrides
// fleet.postgres, so a password can stay out of settings.yml; set alone,
// it makes this host a fleet member with the fleet's defaults.
const EnvFleetDSN = "BOTTLECAP_FLEET_DSN"

// fleet reads the fleet: section (SPEC section 14):
//
//	fleet:
//	  postgres: postgres://bottlecap@db.internal:5432/bottlecap
//	  host: build-box-1
//	  timezone: UTC
//	  budget:
//	    claude: 20M/month
//	  fail_open: false
//	  lease: 50k
//
// An empty fleet: is a fleet of the defaults, whose DSN must then come
// from $BOTTLECAP_FLEET_DSN (ResolveFleet says so).
func (p *settingsParser) fleet(f field) (*budget.Fleet, error) {
	fl := &budget.Fleet{Timezone: time.UTC, Budget: budget.Limits{}}
	err := p.fields(f.value, f.path, func(k field) error {
		var err error
		switch k.name {
		case "postgres":
			fl.Postgres, err = p.dsn(k)
		case "host":
			fl.Host, err = p.nameValue(k, "fleet host")
		case "timezone":
			fl.Timezone, err = p.timezone(k)
		case "budget":
			fl.Budget, err = p.limits(k)
		case "fail_open":
			fl.FailOpen, err = p.boolean(k)
		case "lease":
			fl.Lease, err = p.leaseSize(k)
		default:
			err = p.unknown(k, "postgres", "host", "timezone", "budget", "fail_open", "lease")
		}
		return err
	})
	return fl, err
}

// dsn reads a Postgres connection string.
func (p *settingsParser) dsn(f field) (string, error) {
	s, err := p.scalar(f)
	if err != nil {
		return "", err
	}
	if msg := checkDSN(s); msg != "" {
		return "", p.fail(f.value, f.path, "%s", msg)
	}
	return s, nil
}

// checkDSN is what is wrong with a DSN's shape, or "". The driver parses
// it fully when the daemon connects; this catches what is plainly not a
// DSN (a host name alone, a URL of another scheme) at load. The DSN is
// not quoted back: it may hold a password.
func checkDSN(s string) string {
	const want = "want postgres://user@host:5432/dbname or keyword=value pairs such as host=db dbname=bottlecap"
	if scheme, _, ok := strings.Cut(s, "://"); ok {
		if scheme != "postgres" && scheme != "postgresql" {
			return fmt.Sprintf("the DSN's scheme %q is not postgres (%s)", scheme, want)
		}
		if _, err := url.Parse(s); err != nil {
			return "the DSN is not a valid URL (" + want + ")"
		}
		return ""
	}
	if !strings.Contains(s, "=") {
		return "not a Postgres DSN (" + want + ")"
	}
	return ""
}

// boolean reads true or false.
func (p *settingsParser) boolean(f field) (bool, error) {
	s, err := p.scalar(f)
	if err != nil {
		return false, err
	}
	if f.value.Tag == "!!bool" {
		if b, err := strconv.ParseBool(strings.ToLower(s)); err == nil {
			return b, nil
		}
	}
	return false, p.fail(f.value, f.path, "%q is not a boolean (want true or false)", s)
}

// leaseSize reads the tokens of one lease request: an amount above 0.
func (p *settingsParser) leaseSize(f field) (int64, error) {
	s, err := p.scalar(f)
	if err != nil {
		return 0, err
	}
	n, err := budget.ParseTokens(s)
	if err != nil {
		return 0, p.limitError(f.value, f.path, err)
	}
	if n == 0 {
		return 0, p.fail(f.value, f.path, "a lease of 0 tokens could never be spent (want e.g. 50k)")
	}
	return n, nil
}

// ResolveFleet is the fleet in force: the settings' fleet (nil: none) with
// envDSN, the value of $BOTTLECAP_FLEET_DSN, over its postgres:, and
// hostname (the machine's) for a host left out. envDSN alone makes a fleet
// of the defaults; neither gives nil, a host alone. f is not modified.
func ResolveFleet(f *budget.Fleet, envDSN, hostname string) (*budget.Fleet, error) {
	if f == nil && envDSN == "" {
		return nil, nil
	}
	r := f.Clone()
	if r == nil {
		r = &budget.Fleet{Timezone: time.UTC, Budget: budget.Limits{}}
	}
	if envDSN != "" {
		if msg := checkDSN(envDSN); msg != "" {
			return nil, fmt.Errorf("$%s: %s: %w", EnvFleetDSN, msg, budget.ErrInvalid)
		}
		r.Postgres = envDSN
	}
	if r.Postgres == "" {
		return nil, fmt.Errorf("fleet: settings have a fleet: section but no postgres: DSN, and $%s is not set: %w", EnvFleetDSN, budget.ErrInvalid)
	}
	if r.Host == "" {
		if budget.ValidateName("host", hostname) != nil {
			return nil, fmt.Errorf("fleet: this machine's hostname %q cannot name it in the fleet: set fleet.host: %w", hostname, budget.ErrInvalid)
		}
		r.Host = hostname
	}
	return r, nil
}
