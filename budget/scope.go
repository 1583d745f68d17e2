package budget

import "fmt"

// ScopeKind is a level of the budget hierarchy, most specific first.
type ScopeKind string

// The scopes of SPEC section 2.
const (
	ScopeAgent  ScopeKind = "agent"
	ScopeBottle ScopeKind = "bottle"
	ScopeParent ScopeKind = "parent"
	ScopeGlobal ScopeKind = "global"
	// ScopeFleet is the budget shared by every host of a fleet (SPEC
	// section 14): above global, and always applying, whatever the
	// precedence says of the scopes below it. It is set in settings only.
	ScopeFleet ScopeKind = "fleet"
)

// ParseScopeKind accepts the scope names a budget can be set at at runtime:
// global, bottle and agent (a parent's budget is its own bottle budget).
func ParseScopeKind(s string) (ScopeKind, error) {
	switch k := ScopeKind(s); k {
	case ScopeGlobal, ScopeBottle, ScopeAgent:
		return k, nil
	}
	return "", fmt.Errorf("%w: scope %q: want global, bottle or agent", ErrInvalid, s)
}
