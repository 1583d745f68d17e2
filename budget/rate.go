package budget

import (
	"fmt"
	"strconv"
	"strings"
)

// Rates are rate guards (SPEC section 12): per provider, the most tokens a
// bottle may report in one minute before the guard trips. They catch a
// runaway loop long before its budget is gone.
type Rates map[string]int64

// Merge returns r with every provider of over replacing r's value.
func (r Rates) Merge(over Rates) Rates {
	if len(over) == 0 {
		return r
	}
	c := make(Rates, len(r)+len(over))
	for k, v := range r {
		c[k] = v
	}
	for k, v := range over {
		c[k] = v
	}
	return c
}

// rateUnit is the one unit a rate guard is written in. Only the minute
// exists: the guard counts over the last minute, and a unit written out
// keeps "300k" (a budget) and "300k/min" (a rate) apart wherever they are
// read.
const rateUnit = "/min"

// ParseRate parses a rate guard as settings, labels, the API and the
// command line write it: a token amount (ParseTokens' notation) and
// "/min", e.g. 300k/min. The amount must be above 0 (no guard is written
// by leaving the provider out). Errors are *TokenError.
func ParseRate(s string) (int64, error) {
	t := strings.TrimSpace(s)
	amount, unit, found := strings.Cut(t, "/")
	switch {
	case !found:
		return 0, &TokenError{Reason: fmt.Sprintf("%q has no unit: a rate guard is tokens per minute, e.g. 300k/min", s)}
	case "/"+strings.TrimSpace(unit) != rateUnit:
		return 0, &TokenError{Reason: fmt.Sprintf("%q: a rate guard is per minute only (want e.g. 300k/min)", s)}
	}
	n, msg := parseTokens(amount)
	if msg != "" {
		return 0, &TokenError{Reason: msg}
	}
	if n == 0 {
		return 0, &TokenError{Reason: fmt.Sprintf("%q: a rate guard must be above 0 (for no guard, leave the provider out)", s)}
	}
	return n, nil
}

// FormatRate writes a rate guard as ParseRate reads it, as short as it
// can be without losing a token: 300k/min, 1.5M/min, 12345/min.
func FormatRate(n int64) string { return exactTokens(n) + rateUnit }

// exactTokens is n with the largest suffix that writes it exactly in at
// most two decimals, else its digits.
func exactTokens(n int64) string {
	for _, u := range []struct {
		size   int64
		suffix string
	}{{1e9, "G"}, {1e6, "M"}, {1e3, "k"}} {
		if n >= u.size && n%(u.size/100) == 0 {
			return strconv.FormatFloat(float64(n)/float64(u.size), 'f', -1, 64) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// groupThousands writes n with commas between groups of three digits, as
// an operator reads a count in a log line: 412,000.
func groupThousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// RateReason says why the rate guard tripped, naming the count, the
// provider and the guard.
func RateReason(count, guard int64, provider string) string {
	return fmt.Sprintf("rate guard: %s %s tokens in the last minute, over %s", groupThousands(count), provider, FormatRate(guard))
}

// RateGuard is the guard over a bottle's own reports for a provider: the
// bottle's own (registration, label), else the settings' for its manifest
// name, else for its agent's name, else the settings' default for every
// bottle. An implicit bottle, known from its reports only, gets its own
// and the default: its name and agent are only what reports claim.
func (b *Book) RateGuard(slug, provider string) (int64, bool) {
	if bt, ok := b.bottles[slug]; ok {
		if n, ok := bt.Rate[provider]; ok {
			return n, true
		}
		if !bt.Implicit {
			if n, ok := b.settings.Bottles[bt.Name].Rate[provider]; ok {
				return n, true
			}
			if n, ok := b.settings.Agents[bt.Agent].Rate[provider]; ok {
				return n, true
			}
		}
	}
	n, ok := b.settings.Rate[provider]
	return n, ok
}

// RateGuards are every guard over a bottle, per provider, resolved as
// RateGuard resolves one.
func (b *Book) RateGuards(slug string) Rates {
	bt, ok := b.bottles[slug]
	if !ok {
		return b.settings.Rate.Merge(nil)
	}
	out := b.settings.Rate
	if !bt.Implicit {
		out = out.Merge(b.settings.Agents[bt.Agent].Rate).Merge(b.settings.Bottles[bt.Name].Rate)
	}
	return out.Merge(bt.Rate)
}

// RatePolicy is what a tripped rate guard does.
func (b *Book) RatePolicy() Policy {
	if b.settings.RatePolicy != "" {
		return b.settings.RatePolicy
	}
	return Pause
}

// TripRate claims a bottle for the rate guard's action: pending, for the
// reason given, with the guard's mark, which SetState keeps through the
// action's own steps.
func (b *Book) TripRate(slug, reason string) {
	if bt, ok := b.bottles[slug]; ok {
		bt.State, bt.StateReason, bt.ByOperator, bt.ByRateGuard = Pending, reason, false, true
	}
}

// RateLiftable reports whether the rate guard may lift what it did to the
// bottle: it paused or cut it off (its action is done), and no operator
// has acted since. A bottle the guard froze or killed stays so.
func (bt *Bottle) RateLiftable() bool {
	return bt.ByRateGuard && !bt.ByOperator && (bt.State == Paused || bt.State == CutOff)
}
