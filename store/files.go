package store

import (
	"fmt"
	"os"
	"sync/atomic"

	"github.com/bot-bottle/bottlecap/budget"
)

// openFiles remembers the files the daemon's connections opened, to
// notice one being unlinked or swapped under them.
type openFiles struct {
	paths []string
	infos []os.FileInfo
	lost  atomic.Pointer[error] // once lost, always lost until a restart
	// rescue copies what a lost -wal still holds (the open connections can
	// read the unlinked file) into the database file.
	rescue func() error
}

// watchOpenFiles records the identity (device and inode) of the database and
// its -wal file, which exist once a connection has read the database in
// WAL mode.
func watchOpenFiles(dbPath string, rescue func() error) (*openFiles, error) {
	f := &openFiles{paths: []string{dbPath, dbPath + "-wal"}, rescue: rescue}
	for _, p := range f.paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("stat ledger file: %w", err)
		}
		f.infos = append(f.infos, fi)
	}
	return f, nil
}

// check returns budget.ErrLedgerLost once either file is no longer the one opened:
// two stat calls, made around every write transaction.
func (f *openFiles) check() error {
	if f == nil {
		return nil // a read-only DB writes nothing
	}
	if lost := f.lost.Load(); lost != nil {
		return *lost
	}
	for i, p := range f.paths {
		fi, err := os.Stat(p)
		if err == nil && os.SameFile(fi, f.infos[i]) {
			continue
		}
		what := "was deleted"
		if err == nil {
			what = "was replaced by another file"
		}
		lost := fmt.Errorf("%w: %s %s while the daemon had it open%s; writes are refused so that no acknowledged report is lost: restart the daemon to reopen the ledger", budget.ErrLedgerLost, p, what, f.rescued(i))
		f.lost.CompareAndSwap(nil, &lost)
		return *f.lost.Load()
	}
	return nil
}

// rescued copies a lost -wal's committed reports into the database file,
// which would otherwise lose them at the next crash, and says how that
// went. A lost database file cannot be rescued this way.
func (f *openFiles) rescued(i int) string {
	if i != 1 || f.rescue == nil || f.lost.Load() != nil {
		return ""
	}
	if err := f.rescue(); err != nil {
		return fmt.Sprintf(" (copying its committed reports into %s failed: %v)", f.paths[0], err)
	}
	return fmt.Sprintf(" (its committed reports were copied into %s)", f.paths[0])
}
