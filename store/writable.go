package store

import (
	"context"
	"errors"
	"sync"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// writeHealth remembers the last write the disk refused, until a later
// write commits, so that status can say the ledger is read-only before an
// operator finds out from refused reports.
type writeHealth struct {
	mu  sync.Mutex
	err error
}

// note records the outcome of a write: a refusal by the file or its file
// system is kept, a commit clears it, other errors (a conflict, a bad
// report) say nothing about the disk.
func (h *writeHealth) note(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case err == nil:
		h.err = nil
	case diskRefused(err):
		h.err = err
	}
}

// diskRefused reports whether SQLite failed because it could not write the
// file: read-only file or mount, no space, I/O error, no permission.
func diskRefused(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_READONLY, sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR,
		sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM:
		return true
	}
	return false
}

// Writable returns nil when the ledger takes writes, else why not: it was
// opened read-only (ErrReadOnly), its files were deleted under the daemon
// (budget.ErrLedgerLost), or its last write was refused by the file or the file
// system (read-only, full, failing), which holds until a write commits
// again.
func (db *DB) Writable(context.Context) error {
	if db.write == nil {
		return ErrReadOnly
	}
	// A deleted or replaced -wal or database file refuses every write
	// until a restart (files.go); asking is enough to notice it.
	if err := db.files.check(); err != nil {
		return err
	}
	db.health.mu.Lock()
	defer db.health.mu.Unlock()
	return db.health.err
}
