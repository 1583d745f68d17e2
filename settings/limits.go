package settings

import (
	"errors"
	"fmt"
	"strings"
	"time"

	// The zone database is built in, so timezone: works on a host (or in
	// a container) without /usr/share/zoneinfo; the system's copy, where
	// there is one, is still read first.
	_ "time/tzdata"

	"github.com/bot-bottle/bottlecap/budget"
	"go.yaml.in/yaml/v3"
)

// limits reads a provider -> limits mapping. A provider's value is one
// limit (5M, 5M/day), several joined with '+', or a list of limits
// ([5M/day, 50M/month]), each with at most one limit per window.
func (p *settingsParser) limits(f field) (budget.Limits, error) {
	l := budget.Limits{}
	err := p.fields(f.value, f.path, func(e field) error {
		if err := p.checkName(e, "provider"); err != nil {
			return err
		}
		set, err := p.limitSet(e)
		if err != nil {
			return err
		}
		l[e.name] = set
		return nil
	})
	return l, err
}

// limitSet reads one provider's limits: a scalar or a list of scalars.
func (p *settingsParser) limitSet(f field) (budget.LimitSet, error) {
	if f.value.Kind != yaml.SequenceNode {
		s, err := p.scalar(f)
		if err != nil {
			return nil, err
		}
		set, err := budget.ParseLimitSet(s)
		return set, p.limitError(f.value, f.path, err)
	}
	if len(f.value.Content) == 0 {
		return nil, p.fail(f.value, f.path, "empty list; give at least one limit, e.g. [5M/day, 50M/month]")
	}
	var all []budget.Limit
	for i, n := range f.value.Content {
		item := fmt.Sprintf("%s[%d]", f.path, i)
		if err := p.plain(n, item); err != nil {
			return nil, err
		}
		if !isScalar(n) {
			return nil, p.fail(n, item, "want a limit such as 5M/day, got %s", describe(n))
		}
		l, err := budget.ParseLimit(n.Value)
		if err != nil {
			return nil, p.limitError(n, item, err)
		}
		all = append(all, l)
	}
	set, err := budget.NewLimitSet(all...)
	return set, p.limitError(f.value, f.path, err)
}

// limitError places a limit's *budget.TokenError at node n, the caret
// under the part of a plain value at fault (the window after the slash).
func (p *settingsParser) limitError(n *yaml.Node, path string, err error) error {
	var te *budget.TokenError
	if !errors.As(err, &te) {
		return err
	}
	col := n.Column
	if n.Kind == yaml.ScalarNode && n.Style == 0 {
		col += te.Offset
	}
	return p.errAt(n.Line, col, path, te.Reason)
}

// timezone reads an IANA zone name such as Europe/Berlin or UTC.
func (p *settingsParser) timezone(f field) (*time.Location, error) {
	s, err := p.scalar(f)
	if err != nil {
		return nil, err
	}
	if s == "Local" || strings.TrimSpace(s) != s {
		return nil, p.fail(f.value, f.path, "%q is not a timezone (want an IANA name such as UTC, Europe/Berlin or America/New_York)", s)
	}
	loc, err := time.LoadLocation(s)
	if err != nil {
		return nil, p.fail(f.value, f.path, "%q is not a timezone (want an IANA name such as UTC, Europe/Berlin or America/New_York)", s)
	}
	return loc, nil
}
