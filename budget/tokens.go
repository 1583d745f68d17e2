package budget

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ParseTokens parses a token amount as settings, labels and the command line
// write it, so every entry point agrees: digits with optional '_' between
// them (5000000, 5_000_000), optionally a decimal fraction and a suffix k, M
// or G (case-insensitive, powers of 1000: 200k, 1.5M, 2g). The result must be
// a whole number of tokens from 0 to MaxInt64: "1.5" and "1.0000005M" are
// rejected, "1.0" is 1. Errors wrap ErrInvalid.
func ParseTokens(s string) (int64, error) {
	n, msg := parseTokens(s)
	if msg != "" {
		return 0, &TokenError{Reason: msg}
	}
	return n, nil
}

// TokenError is a token amount, limit or window that ParseTokens,
// ParseLimit, ParseLimitSet or ParseWindow refused. It wraps ErrInvalid
// and reads "invalid: " and its Reason; the settings parser, which gives
// the file position itself, shows the Reason alone.
type TokenError struct {
	Reason string // what is wrong with the amount, e.g. `"5Q" is not a token amount (…)`
	// Offset is where in the text given the problem starts (the window
	// after a slash, the third of several limits), for a caret under it.
	Offset int
}

// Error gives the class and the reason.
func (e *TokenError) Error() string { return ErrInvalid.Error() + ": " + e.Reason }

// Unwrap makes errors.Is(err, ErrInvalid) hold.
func (e *TokenError) Unwrap() error { return ErrInvalid }

// parseTokens is ParseTokens with the problem as a plain message.
func parseTokens(s string) (int64, string) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, "empty token amount " + tokenHint
	}
	if t[0] == '-' {
		return 0, fmt.Sprintf("%q is negative (a token amount is 0 or more)", s)
	}
	exp := 0
	if e, ok := tokenUnits[t[len(t)-1]]; ok {
		exp, t = e, t[:len(t)-1]
	}
	whole, frac, dot := strings.Cut(t, ".")
	whole, ok := digits(whole)
	if dot && ok {
		frac, ok = digits(frac)
	}
	if !ok {
		return 0, fmt.Sprintf("%q is not a token amount %s", s, tokenHint)
	}
	frac = strings.TrimRight(frac, "0")
	if len(frac) > exp {
		return 0, fmt.Sprintf("%q is not a whole number of tokens", s)
	}
	n, err := strconv.ParseInt(whole+frac+strings.Repeat("0", exp-len(frac)), 10, 64)
	if err != nil {
		return 0, fmt.Sprintf("%q is too large (at most %d tokens)", s, int64(math.MaxInt64))
	}
	return n, ""
}

// digits strips the '_' separators of a digit string; ok is false for
// anything but digits with single '_' between them.
func digits(s string) (string, bool) {
	isDigit := func(c byte) bool { return c >= '0' && c <= '9' }
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case isDigit(c):
			b.WriteByte(c)
		case c == '_' && i > 0 && i < len(s)-1 && isDigit(s[i-1]) && isDigit(s[i+1]):
		default:
			return "", false
		}
	}
	return b.String(), b.Len() > 0
}

// tokenHint lists the token amount forms in error messages.
const tokenHint = "(want e.g. 5000000, 5_000_000, 5M, 200k, 1.5M)"

// tokenUnits are the decimal (SI) suffixes, case-insensitive: 1k = 1000.
var tokenUnits = map[byte]int{'k': 3, 'K': 3, 'm': 6, 'M': 6, 'g': 9, 'G': 9}
