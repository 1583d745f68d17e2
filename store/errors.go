package store

import (
	"database/sql"
	"errors"
	"fmt"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/bot-bottle/bottlecap/budget"
)

// ErrReadOnly is returned by every write on a DB opened with OpenReadOnly.
// It wraps budget.ErrDenied: the dashboard may look but must act through the
// daemon.
var ErrReadOnly = fmt.Errorf("store opened read-only: %w", budget.ErrDenied)

// classify translates a database error into the budget error classes, once,
// at this boundary, keeping the original error in the chain. It goes by the
// driver's result code (primary code: the low byte of an extended one),
// never by message text.
func classify(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: %w", budget.ErrNotFound, err)
	}
	if errors.Is(err, sql.ErrConnDone) {
		return fmt.Errorf("%w: %w", budget.ErrUnavailable, err)
	}
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return err
	}
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_CONSTRAINT:
		return fmt.Errorf("%w: %w", budget.ErrConflict, err)
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR,
		sqlite3.SQLITE_FULL, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PROTOCOL,
		sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_INTERRUPT:
		return fmt.Errorf("%w: %w", budget.ErrUnavailable, err)
	}
	return err
}

func nowNanos() int64 { return time.Now().UnixNano() }

// toNanos stores a time as unix nanoseconds; the zero time is 0.
func toNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// fromNanos is the inverse of toNanos, in UTC.
func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
