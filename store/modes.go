package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// FileMode is the mode of the ledger's files (the database, -wal and
// -shm). They hold every bottle's usage and the audit log, which the API
// shows only to operators, so only the daemon's uid (and root) may read
// them; the socket's group reaches run/, never the ledger.
const FileMode fs.FileMode = 0o600

// ledgerFiles are the files SQLite keeps for a WAL database at path.
func ledgerFiles(path string) []string {
	return []string{path, path + "-wal", path + "-shm"}
}

// secureFiles creates the ledger file with FileMode before SQLite opens it,
// and tightens any existing ledger file that is looser, calling tightened
// for each. SQLite creates -wal and -shm (again after every clean close)
// with the database file's mode, so a database file of FileMode is what
// keeps them at FileMode too.
func secureFiles(path string, tightened func(path string, was fs.FileMode)) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, FileMode)
	switch {
	case err == nil:
		// An empty file is an empty SQLite database.
		if err := f.Close(); err != nil {
			return fmt.Errorf("create ledger %s: %w", path, err)
		}
	case !errors.Is(err, fs.ErrExist):
		return fmt.Errorf("create ledger %s: %w", path, err)
	}
	for _, p := range ledgerFiles(path) {
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("ledger file %s: %w", p, err)
		}
		if was := fi.Mode().Perm(); was&^FileMode != 0 {
			if err := os.Chmod(p, FileMode); err != nil {
				return fmt.Errorf("tighten ledger file %s to %o: %w", p, FileMode, err)
			}
			if tightened != nil {
				tightened(p, was)
			}
		}
	}
	return nil
}

// WithTightened calls fn for each existing ledger file Open found readable
// or writable by others and tightened to FileMode, so that the daemon can
// say so.
func WithTightened(fn func(path string, was fs.FileMode)) Option {
	return func(o *options) { o.tightened = fn }
}
