package budget

import "errors"

// Error classes shared by every layer. Each boundary wraps them with context
// and translates them once: SQLite codes and Docker errors into these, these
// into HTTP statuses, HTTP statuses back into these in the client.
var (
	// ErrInvalid marks bad input: a malformed report, setting or request.
	ErrInvalid = errors.New("invalid")
	// ErrNotFound marks a bottle, budget or action that does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict marks a request that contradicts current state, such as a
	// parent cycle.
	ErrConflict = errors.New("conflict")
	// ErrDenied marks a caller that may not do what it asked.
	ErrDenied = errors.New("denied")
	// ErrUnavailable marks a store or engine that cannot answer now; the
	// caller should retry.
	ErrUnavailable = errors.New("unavailable")
)
