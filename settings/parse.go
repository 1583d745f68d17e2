// Package settings reads bottlecap's settings.yml (SPEC section 3) into
// *budget.Settings: strictly, with every problem a positioned *Error, and
// never more than MaxBytes of it. It is the only place that knows the file's
// YAML; budget keeps the domain types and does no I/O.
package settings

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
	"go.yaml.in/yaml/v3"
)

// MaxBytes bounds a settings file. Real ones are a few kilobytes;
// a thousand bottles with budgets of their own fit in well under 100 KiB.
// A larger file is refused before it is parsed, so a file written by
// mistake (or by someone who may write it) cannot stall a reload or grow
// the daemon's memory.
const MaxBytes = 1 << 20

// Load reads a settings file. A missing file yields the defaults, so
// a fresh host runs without one; a file that cannot be read is an I/O error
// (not a *Error); a file over MaxBytes is a *Error
// read no further than the limit.
func Load(path string) (*budget.Settings, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return budget.DefaultSettings(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("read settings: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read settings: %w", err)
	}
	return Parse(path, data)
}

// top handles one top-level key.
func (p *settingsParser) top(f field) error {
	var err error
	switch f.name {
	case "budget":
		p.s.Budget, err = p.limits(f)
	case "shutdown":
		p.s.Shutdown, err = p.policy(f)
	case "precedence":
		p.s.Precedence, err = p.precedence(f)
	case "warn_at":
		p.s.WarnAt, err = p.warnAt(f)
	case "bottles":
		err = p.defaultsByName(f, p.s.Bottles)
	case "agents":
		err = p.defaultsByName(f, p.s.Agents)
	case "providers":
		err = p.fields(f.value, f.path, p.provider)
	case "weights":
		err = p.fields(f.value, f.path, p.weights)
	case "operators":
		p.s.Operators, err = p.operators(f)
	case "socket":
		p.s.Socket, err = p.socket(f)
	case "allowance_ttl":
		p.s.AllowanceTTL, err = p.allowanceTTL(f)
	case "rate":
		p.s.Rate, err = p.rates(f)
	case "rate_policy":
		p.s.RatePolicy, err = p.policy(f)
	case "timezone":
		p.s.Timezone, err = p.timezone(f)
	case "notify":
		p.s.Notify, err = p.notify(f)
	case "fleet":
		p.s.Fleet, err = p.fleet(f)
	default:
		err = p.unknown(f, "budget", "shutdown", "precedence", "warn_at", "bottles",
			"agents", "providers", "weights", "operators", "socket", "allowance_ttl", "rate", "rate_policy", "timezone", "notify", "fleet")
	}
	return err
}

// notAName is the error of a name budget.ValidateName refuses, with the
// rule it breaks.
const notAName = "%q is not a %s name (want 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit)"

// checkName rejects provider, bottle and agent names bottlecap cannot use.
func (p *settingsParser) checkName(f field, what string) error {
	if budget.ValidateName(what, f.name) != nil {
		return p.fail(f.key, f.path, notAName, f.name, what)
	}
	return nil
}

// nameValue reads a value that is a name (a sink's, a fleet host's), held
// to the same rule as the names of keys.
func (p *settingsParser) nameValue(f field, what string) (string, error) {
	s, err := p.scalar(f)
	if err != nil {
		return "", err
	}
	if budget.ValidateName(what, s) != nil {
		return "", p.fail(f.value, f.path, notAName, s, what)
	}
	return s, nil
}

// policy reads cutoff, pause, freeze or kill.
func (p *settingsParser) policy(f field) (budget.Policy, error) {
	s, err := p.scalar(f)
	if err != nil {
		return "", err
	}
	pol, err := budget.ParsePolicy(s)
	if err != nil {
		return "", p.fail(f.value, f.path, "%q is not a policy (want cutoff, pause, freeze or kill)", s)
	}
	return pol, nil
}

// precedence reads nearest or strict.
func (p *settingsParser) precedence(f field) (budget.Precedence, error) {
	s, err := p.scalar(f)
	if err != nil {
		return "", err
	}
	prec, err := budget.ParsePrecedence(s)
	if err != nil {
		return "", p.fail(f.value, f.path, "%q is not a precedence (want nearest or strict)", s)
	}
	return prec, nil
}

// warnAt reads a threshold: a percentage such as 80% or 87.5%, or a bare
// fraction above 0 and at most 1 such as 0.8.
func (p *settingsParser) warnAt(f field) (float64, error) {
	s, err := p.scalar(f)
	if err != nil {
		return 0, err
	}
	num, pct := strings.CutSuffix(s, "%")
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, p.fail(f.value, f.path, "%q is not a percentage (want e.g. 80%% or 0.8)", s)
	}
	if pct {
		v /= 100
	}
	if !pct && v > 1 && v <= 100 {
		return 0, p.fail(f.value, f.path, "%q is more than 1; write %s%% for a percentage", s, s)
	}
	if v <= 0 || v > 1 {
		return 0, p.fail(f.value, f.path, "%q is out of range (want above 0%% and at most 100%%)", s)
	}
	return v, nil
}

// defaultsByName reads bottles: or agents:, name -> {budget, shutdown, rate}.
func (p *settingsParser) defaultsByName(f field, into map[string]budget.Defaults) error {
	what := strings.TrimSuffix(f.name, "s")
	return p.fields(f.value, f.path, func(e field) error {
		if err := p.checkName(e, what); err != nil {
			return err
		}
		var d budget.Defaults
		err := p.fields(e.value, e.path, func(k field) error {
			var err error
			switch k.name {
			case "budget":
				d.Budget, err = p.limits(k)
			case "shutdown":
				d.Shutdown, err = p.policy(k)
			case "rate":
				d.Rate, err = p.rates(k)
			default:
				err = p.unknown(k, "budget", "shutdown", "rate")
			}
			return err
		})
		into[e.name] = d
		return err
	})
}

// hostPattern accepts host names, IPv4 and bracketed IPv6 addresses, with
// an optional port.
var hostPattern = regexp.MustCompile(`^([a-z0-9]([a-z0-9_.-]*[a-z0-9])?|\[[0-9a-f:.]+\])(:[0-9]{1,5})?$`)

// provider reads one provider's hosts: a list, or one space-separated string.
func (p *settingsParser) provider(f field) error {
	if err := p.checkName(f, "provider"); err != nil {
		return err
	}
	entry := providerEntry{name: f.name, hosts: []string{}}
	var err error
	switch v := f.value; {
	case isNull(v):
	case v.Kind == yaml.SequenceNode:
		for i, n := range v.Content {
			if err = p.host(&entry, n, fmt.Sprintf("%s[%d]", f.path, i), ""); err != nil {
				break
			}
		}
	case !isScalar(v):
		return p.fail(v, f.path, "want a list of hosts or a space-separated string, got %s", describe(v))
	default:
		for _, h := range strings.Fields(v.Value) {
			if err = p.host(&entry, v, f.path, h); err != nil {
				break
			}
		}
	}
	p.providers = append(p.providers, entry)
	return err
}

// host adds one host written at n (its text, unless h is given) to entry.
func (p *settingsParser) host(entry *providerEntry, n *yaml.Node, path, h string) error {
	if err := p.plain(n, path); err != nil {
		return err
	}
	if !isScalar(n) {
		return p.fail(n, path, "want a host, got %s", describe(n))
	}
	if h == "" {
		h = n.Value
	}
	h = strings.ToLower(h)
	if !hostPattern.MatchString(h) {
		return p.fail(n, path, "%q is not a host (want e.g. api.anthropic.com or localhost:11434, without scheme or path)", h)
	}
	entry.hosts = append(entry.hosts, h)
	entry.nodes = append(entry.nodes, n)
	return nil
}

// mergeProviders lays the file's providers over the defaults: a provider the
// file names gets exactly the file's hosts, the others keep theirs. A host
// may belong to one provider only, so attribution is deterministic.
func (p *settingsParser) mergeProviders() error {
	owner := map[string]string{}
	named := map[string]bool{}
	for _, e := range p.providers {
		named[e.name] = true
	}
	for name, hosts := range p.s.Providers {
		if !named[name] {
			for _, h := range hosts {
				owner[h] = name
			}
		}
	}
	for _, e := range p.providers {
		for i, h := range e.hosts {
			if prev, ok := owner[h]; ok {
				return p.fail(e.nodes[i], "providers."+e.name, "host %q already belongs to %s (a host can belong to one provider only)", h, prev)
			}
			owner[h] = e.name
		}
		p.s.Providers[e.name] = e.hosts
	}
	return nil
}

// weights reads one provider's weights; a kind left out weighs 1.
func (p *settingsParser) weights(f field) error {
	if err := p.checkName(f, "provider"); err != nil {
		return err
	}
	w := budget.UnitWeights
	err := p.fields(f.value, f.path, func(k field) error {
		var dst *float64
		switch k.name {
		case "input":
			dst = &w.Input
		case "cache_read":
			dst = &w.CacheRead
		case "cache_write":
			dst = &w.CacheWrite
		case "output":
			dst = &w.Output
		default:
			return p.unknown(k, "input", "cache_read", "cache_write", "output")
		}
		var err error
		*dst, err = p.weight(k)
		return err
	})
	if err != nil {
		return err
	}
	if w == (budget.Weights{}) {
		return p.fail(f.key, f.path, "every weight is 0; to stop counting a provider, give it no budget instead")
	}
	p.s.Weights[f.name] = w
	return nil
}

// weight reads one non-negative finite number.
func (p *settingsParser) weight(f field) (float64, error) {
	s, err := p.scalar(f)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, p.fail(f.value, f.path, "%q is not a weight (want a number such as 1 or 0.1)", s)
	}
	if v < 0 {
		return 0, p.fail(f.value, f.path, "%q is negative (want a weight of 0 or more)", s)
	}
	return v, nil
}

// groupPattern accepts POSIX-style group names (and all-digit uids).
var groupPattern = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*\$?$`)

// operators reads a list of uids and group names, kept as strings.
func (p *settingsParser) operators(f field) ([]string, error) {
	if isNull(f.value) {
		return nil, nil
	}
	if f.value.Kind != yaml.SequenceNode {
		return nil, p.fail(f.value, f.path, "want a list of uids and group names, got %s", describe(f.value))
	}
	var ops []string
	for i, n := range f.value.Content {
		item := fmt.Sprintf("%s[%d]", f.path, i)
		if err := p.plain(n, item); err != nil {
			return nil, err
		}
		s := n.Value
		switch {
		case n.Kind == yaml.ScalarNode && n.Tag == "!!int":
			uid, err := strconv.ParseUint(s, 10, 32)
			if err != nil {
				return nil, p.fail(n, item, "%s is not a uid (want a decimal number from 0 to 4294967295)", s)
			}
			s = strconv.FormatUint(uid, 10)
		case n.Kind != yaml.ScalarNode || n.Tag != "!!str" || !groupPattern.MatchString(s):
			return nil, p.fail(n, item, "want a uid or group name, got %s", describe(n))
		}
		ops = append(ops, s)
	}
	return ops, nil
}

// maxSocketPath is the longest path a unix socket address can hold on Linux.
const maxSocketPath = 107

// socket reads an absolute socket path.
func (p *settingsParser) socket(f field) (string, error) {
	s, err := p.scalar(f)
	if err != nil {
		return "", err
	}
	if !filepath.IsAbs(s) {
		return "", p.fail(f.value, f.path, "%q is not an absolute path", s)
	}
	if s = filepath.Clean(s); len(s) > maxSocketPath {
		return "", p.fail(f.value, f.path, "path is %d bytes, too long for a unix socket (at most %d)", len(s), maxSocketPath)
	}
	return s, nil
}

// The allowance TTL's bounds: below a second a meter's renewals could not
// keep up and its holds would lapse mid-request; above an hour a dead
// meter's holds would keep the budget from others that long.
const (
	minAllowanceTTL = time.Second
	maxAllowanceTTL = time.Hour
)

// allowanceTTL reads a duration such as 30s or 2m.
func (p *settingsParser) allowanceTTL(f field) (time.Duration, error) {
	s, err := p.scalar(f)
	if err != nil {
		return 0, err
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, p.fail(f.value, f.path, "%q is not a duration (want e.g. 30s or 2m)", s)
	}
	if d < minAllowanceTTL || d > maxAllowanceTTL {
		return 0, p.fail(f.value, f.path, "%s is out of range (want from %s to %s)", s, minAllowanceTTL, maxAllowanceTTL)
	}
	return d, nil
}
