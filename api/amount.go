package api

import (
	"encoding/json"
	"fmt"

	"github.com/bot-bottle/bottlecap/budget"
)

// Amount is a token amount on the wire: a JSON number, or a string in the
// settings' notation ("5M", "200k", "5_000_000").
type Amount int64

// UnmarshalJSON accepts a whole number or a token-amount string.
func (a *Amount) UnmarshalJSON(b []byte) error {
	var n json.Number
	if err := json.Unmarshal(b, &n); err == nil {
		v, err := n.Int64()
		if err != nil || v < 0 {
			return fmt.Errorf("%w: %s is not a whole non-negative number of tokens", budget.ErrInvalid, n)
		}
		*a = Amount(v)
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("%w: want a number of tokens or a string like \"1M\"", budget.ErrInvalid)
	}
	v, err := budget.ParseTokens(s)
	if err != nil {
		return err
	}
	*a = Amount(v)
	return nil
}

// Limits converts wire amounts to domain limits.
func Limits(m map[string]Amount) budget.Limits {
	if m == nil {
		return nil
	}
	l := make(budget.Limits, len(m))
	for k, v := range m {
		l[k] = int64(v)
	}
	return l
}
