package budget

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Limit is one cap on a provider's usage at a scope: Tokens counted over
// Window. The zero Window is the bottle's life.
type Limit struct {
	Tokens int64
	Window Window
}

// ParseLimit reads one limit as settings, the API, the command line and
// labels write it: a token amount (ParseTokens), optionally followed by a
// slash and a window (ParseWindow): 5M, 5M/day, 1M/week, 20M/month,
// 500k/5h. Errors are *TokenError (wrapping ErrInvalid).
func ParseLimit(s string) (Limit, error) {
	lead := len(s) - len(strings.TrimLeft(s, " \t"))
	amount, window, slash := strings.Cut(strings.TrimSpace(s), "/")
	n, msg := parseTokens(amount)
	if msg != "" {
		return Limit{}, &TokenError{Reason: msg, Offset: lead}
	}
	l := Limit{Tokens: n}
	if slash {
		at := lead + len(amount) + 1
		at += len(window) - len(strings.TrimLeft(window, " \t"))
		w, msg := parseWindow(strings.TrimSpace(window))
		if msg != "" {
			return Limit{}, &TokenError{Reason: msg, Offset: at}
		}
		l.Window = w
	}
	return l, nil
}

// String writes the limit as ParseLimit reads it, in exact tokens:
// 5000000 for a lifetime limit, 5000000/day for a windowed one.
func (l Limit) String() string {
	n := strconv.FormatInt(l.Tokens, 10)
	if l.Window == LifeWindow {
		return n
	}
	return n + "/" + l.Window.String()
}

// LimitSet is what one scope holds for one provider: one limit, or
// several with different windows (5M/day and 50M/month), each applying.
// A set is replaced whole when a scope's limit for the provider is set
// again; it is never edited in place.
type LimitSet []Limit

// Lifetime is a set of one lifetime limit: the budgets bottlecap had
// before windows.
func Lifetime(tokens int64) LimitSet { return LimitSet{{Tokens: tokens}} }

// ParseLimitSet reads limits joined with '+', as the command line and
// labels write several for one provider: 5M/day+50M/month.
func ParseLimitSet(s string) (LimitSet, error) {
	var set LimitSet
	at := 0
	for _, part := range strings.Split(s, "+") {
		l, err := ParseLimit(part)
		if err != nil {
			var te *TokenError
			if errors.As(err, &te) {
				te.Offset += at
			}
			return nil, err
		}
		set = append(set, l)
		at += len(part) + 1
	}
	return set.normal()
}

// NewLimitSet checks limits read one by one (a settings list, a JSON
// array) and puts them in their order: one limit per window, lifetime
// first, then day, week, month and rolling spans, shortest first.
func NewLimitSet(limits ...Limit) (LimitSet, error) { return LimitSet(limits).normal() }

func (s LimitSet) normal() (LimitSet, error) {
	if len(s) == 0 {
		return nil, &TokenError{Reason: "no limit given " + tokenHint}
	}
	out := make(LimitSet, len(s))
	copy(out, s)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Window.before(out[j].Window) })
	for i, l := range out {
		if l.Tokens < 0 {
			return nil, &TokenError{Reason: fmt.Sprintf("%d is negative (a token amount is 0 or more)", l.Tokens)}
		}
		if i > 0 && out[i-1].Window.Span() == l.Window.Span() && out[i-1].Window.Period == l.Window.Period {
			return nil, &TokenError{Reason: fmt.Sprintf("two limits for the same window (%s and %s); give each window one limit", out[i-1], l)}
		}
	}
	return out, nil
}

// before orders windows: life, day, week, month, then rolling spans.
func (w Window) before(o Window) bool {
	if w.Period != o.Period {
		return w.Period < o.Period
	}
	return w.Span() < o.Span()
}

// String writes the set as ParseLimitSet reads it: 5000000/day+50000000/month.
func (s LimitSet) String() string {
	parts := make([]string, len(s))
	for i, l := range s {
		parts[i] = l.String()
	}
	return strings.Join(parts, "+")
}

// Windowed reports whether any limit of the set has a window.
func (s LimitSet) Windowed() bool {
	for _, l := range s {
		if l.Window != LifeWindow {
			return true
		}
	}
	return false
}

// MarshalJSON writes one lifetime limit as a number (as before windows),
// one windowed limit as a string ("5000000/day"), several as an array of
// those.
func (s LimitSet) MarshalJSON() ([]byte, error) {
	if len(s) == 1 {
		return json.Marshal(s[0].jsonValue())
	}
	vals := make([]any, len(s))
	for i, l := range s {
		vals[i] = l.jsonValue()
	}
	return json.Marshal(vals)
}

func (l Limit) jsonValue() any {
	if l.Window == LifeWindow {
		return l.Tokens
	}
	return l.String()
}

// UnmarshalJSON reads a number of tokens, a string in ParseLimitSet's
// notation ("5M", "5M/day", "5M/day+50M/month"), or an array of numbers
// and strings, one limit each. Errors wrap ErrInvalid.
func (s *LimitSet) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '[' {
		var items []json.RawMessage
		if err := json.Unmarshal(b, &items); err != nil {
			return fmt.Errorf("%w: want an array of limits such as [\"5M/day\", \"50M/month\"]", ErrInvalid)
		}
		var all LimitSet
		for i, item := range items {
			one, err := unmarshalLimits(item)
			if err != nil {
				return fmt.Errorf("[%d]: %w", i, err)
			}
			all = append(all, one...)
		}
		set, err := all.normal()
		*s = set
		return err
	}
	set, err := unmarshalLimits(b)
	*s = set
	return err
}

// unmarshalLimits reads one JSON number or string.
func unmarshalLimits(b []byte) (LimitSet, error) {
	var n json.Number
	if err := json.Unmarshal(b, &n); err == nil {
		v, err := n.Int64()
		if err != nil || v < 0 {
			return nil, fmt.Errorf("%w: %s is not a whole non-negative number of tokens", ErrInvalid, n)
		}
		return Lifetime(v), nil
	}
	var str string
	if err := json.Unmarshal(b, &str); err != nil {
		return nil, fmt.Errorf("%w: want a number of tokens, a string like \"1M\" or \"5M/day\", or an array of them", ErrInvalid)
	}
	return ParseLimitSet(str)
}

// Limits maps a provider name to its limits at one scope.
type Limits map[string]LimitSet

// UnmarshalJSON reads a provider -> limits object (LimitSet's forms),
// naming the provider of a bad limit.
func (l *Limits) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("%w: want an object of provider limits such as {\"claude\": \"5M/day\"}", ErrInvalid)
	}
	if raw == nil {
		*l = nil
		return nil
	}
	out := make(Limits, len(raw))
	for p, v := range raw {
		var set LimitSet
		if err := set.UnmarshalJSON(v); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		out[p] = set
	}
	*l = out
	return nil
}

// Clone returns a copy that can be changed without touching l (the sets
// are shared: they are never edited in place).
func (l Limits) Clone() Limits {
	if l == nil {
		return nil
	}
	c := make(Limits, len(l))
	for k, v := range l {
		c[k] = v
	}
	return c
}

// Merge returns l with every provider of over replacing l's limits for it.
func (l Limits) Merge(over Limits) Limits {
	c := l.Clone()
	if c == nil && len(over) > 0 {
		c = Limits{}
	}
	for k, v := range over {
		c[k] = v
	}
	return c
}

// String writes the limits as "claude=5000000/day+50000000/month
// codex=1000000", sorted by provider.
func (l Limits) String() string {
	parts := make([]string, 0, len(l))
	for p, s := range l {
		parts = append(parts, p+"="+s.String())
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// windows adds every window the limits use to set.
func (l Limits) windows(set map[Window]bool) {
	for _, s := range l {
		for _, lim := range s {
			if lim.Window != LifeWindow {
				set[lim.Window] = true
			}
		}
	}
}
