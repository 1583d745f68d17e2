package budget

import "fmt"

// Policy is what happens to a bottle when a budget governing it is exhausted.
type Policy string

// The policies of SPEC sections 2 and 12. Cutoff is the default.
const (
	Cutoff Policy = "cutoff"
	Pause  Policy = "pause"
	Freeze Policy = "freeze"
	Kill   Policy = "kill"
)

// ParsePolicy accepts the four policy names; the empty string is not one.
func ParsePolicy(s string) (Policy, error) {
	switch p := Policy(s); p {
	case Cutoff, Pause, Freeze, Kill:
		return p, nil
	}
	return "", fmt.Errorf("%w: policy %q: want cutoff, pause, freeze or kill", ErrInvalid, s)
}

// Precedence decides which scopes apply to a report.
type Precedence string

const (
	// Nearest lets the most specific scope with a limit govern alone.
	Nearest Precedence = "nearest"
	// Strict applies every scope with a limit; the first crossed trips.
	Strict Precedence = "strict"
)

// ParsePrecedence accepts "nearest" and "strict".
func ParsePrecedence(s string) (Precedence, error) {
	switch p := Precedence(s); p {
	case Nearest, Strict:
		return p, nil
	}
	return "", fmt.Errorf("%w: precedence %q: want nearest or strict", ErrInvalid, s)
}

// State is where a bottle stands with respect to enforcement.
type State string

// The states of SPEC section 2.
const (
	Active  State = "active"
	Warned  State = "warned"
	CutOff  State = "cut_off"
	Paused  State = "paused"
	Frozen  State = "frozen"
	Killed  State = "killed"
	Pending State = "pending"
)

// Blocked reports whether the gate must deny a bottle in this state whatever
// its budget says.
func (s State) Blocked() bool {
	switch s {
	case CutOff, Paused, Frozen, Killed, Pending:
		return true
	}
	return false
}

// ActionKind is an enforcement or operator action on a bottle.
type ActionKind string

// The actions of SPEC sections 5, 6 and 12. Restore reverses a cutoff or
// a pause.
const (
	ActCutoff  ActionKind = "cutoff"
	ActPause   ActionKind = "pause"
	ActFreeze  ActionKind = "freeze"
	ActKill    ActionKind = "kill"
	ActRestore ActionKind = "restore"
)

// ParseActionKind accepts cutoff, pause, freeze, kill and restore.
func ParseActionKind(s string) (ActionKind, error) {
	switch a := ActionKind(s); a {
	case ActCutoff, ActPause, ActFreeze, ActKill, ActRestore:
		return a, nil
	}
	return "", fmt.Errorf("%w: action %q: want cutoff, pause, freeze, kill or restore", ErrInvalid, s)
}

// ActionFor is the action a policy calls for.
func ActionFor(p Policy) ActionKind {
	switch p {
	case Pause:
		return ActPause
	case Freeze:
		return ActFreeze
	case Kill:
		return ActKill
	}
	return ActCutoff
}

// StateAfter is the state a bottle is in once an action has been done.
func StateAfter(a ActionKind) State {
	switch a {
	case ActPause:
		return Paused
	case ActFreeze:
		return Frozen
	case ActKill:
		return Killed
	case ActRestore:
		return Active
	}
	return CutOff
}
