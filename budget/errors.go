package budget

import (
	"errors"
	"fmt"
)

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

// ErrLedgerLost means the ledger's database or write-ahead log file was
// deleted or replaced while the daemon held it open. SQLite would go on
// committing into the unlinked file, and every report acknowledged from
// then on would vanish at the next restart, so the store refuses all writes
// instead. It wraps ErrUnavailable: sidecars keep their reports and retry,
// which succeeds once the daemon is restarted.
var ErrLedgerLost = fmt.Errorf("ledger file lost: %w", ErrUnavailable)
