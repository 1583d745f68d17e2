package store_test

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/bot-bottle/bottlecap/store"
)

// checkModes fails the test unless each of the ledger's three files exists
// with store.FileMode.
func checkModes(t *testing.T, path, when string) {
	t.Helper()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Errorf("%s: %v", when, err)
			continue
		}
		if got := fi.Mode().Perm(); got != store.FileMode {
			t.Errorf("%s: %s has mode %o, want %o", when, filepath.Base(p), got, store.FileMode)
		}
	}
}

// TestOpenCreatesTheLedgerPrivate: the database, the -wal and -shm files
// SQLite creates beside it are 0600 after writes and checkpoints, and again
// after a close (which deletes -wal and -shm) and a reopen.
func TestOpenCreatesTheLedgerPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bot-bottle.db")
	for round := range 2 {
		db, err := store.Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		mustAppend(t, db, report("r"+string(rune('a'+round)), "b1", "a", "claude", 10))
		checkModes(t, path, "open round "+string(rune('1'+round)))
		db.Close()
	}
}

// TestOpenTightensALooseLedger gives Open a ledger whose files others may
// read, as older versions left them: each is tightened to 0600 and
// reported through WithTightened.
func TestOpenTightensALooseLedger(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bot-bottle.db")
	old, err := store.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	old.Close()
	// A crash leaves -wal and -shm behind; empty ones are valid.
	os.WriteFile(path+"-wal", nil, 0o644)
	os.WriteFile(path+"-shm", nil, 0o644)
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	db, err := store.Open(context.Background(), path, store.WithTightened(func(p string, was fs.FileMode) {
		if was != 0o644 {
			t.Errorf("%s: reported as %o before, want 644", p, was)
		}
		got = append(got, filepath.Base(p))
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if want := []string{"bot-bottle.db", "bot-bottle.db-wal", "bot-bottle.db-shm"}; !slices.Equal(got, want) {
		t.Errorf("tightened %v, want %v", got, want)
	}
	checkModes(t, path, "after open")
}
