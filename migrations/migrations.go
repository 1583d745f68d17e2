// Package migrations holds the ledger's schema as numbered SQL files
// (NNNN_name.sql) embedded in the binary, and applies the pending ones. Each
// migration runs in its own transaction and is recorded in schema_version,
// so running them on every start is safe: applied ones are skipped.
package migrations

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

// FS holds the migration files. It is exported so tools (and tests) can
// read the schema the binary carries.
//
//go:embed *.sql
var FS embed.FS

// ErrSchema marks a database whose schema is missing or older than this
// binary expects; a read-only opener cannot fix that and says so.
var ErrSchema = errors.New("schema out of date")

// Migration is one numbered schema change.
type Migration struct {
	Version int
	Name    string // file name, e.g. 0001_init.sql
	SQL     string
}

const createVersionTable = `CREATE TABLE IF NOT EXISTS schema_version (
	version    INTEGER PRIMARY KEY,
	name       TEXT    NOT NULL,
	applied_at INTEGER NOT NULL
)`

// All returns the embedded migrations in version order. It fails on a file
// name without a version prefix or on two files with the same version, so a
// bad file is caught by the tests rather than at a user's start-up.
func All() ([]Migration, error) {
	names, err := fs.Glob(FS, "*.sql")
	if err != nil {
		return nil, fmt.Errorf("list migrations: %w", err)
	}
	sort.Strings(names)
	var all []Migration
	seen := map[int]string{}
	for _, name := range names {
		v, err := version(name)
		if err != nil {
			return nil, err
		}
		if prev, ok := seen[v]; ok {
			return nil, fmt.Errorf("migrations %s and %s share version %d", prev, name, v)
		}
		seen[v] = name
		body, err := FS.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", name, err)
		}
		all = append(all, Migration{Version: v, Name: name, SQL: string(body)})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Version < all[j].Version })
	return all, nil
}

// Latest is the version the embedded migrations bring a database to.
func Latest() (int, error) {
	all, err := All()
	if err != nil {
		return 0, err
	}
	if len(all) == 0 {
		return 0, nil
	}
	return all[len(all)-1].Version, nil
}

func version(name string) (int, error) {
	prefix, _, ok := strings.Cut(path.Base(name), "_")
	if !ok {
		return 0, fmt.Errorf("migration %s: want NNNN_name.sql", name)
	}
	v, err := strconv.Atoi(prefix)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("migration %s: want a positive version prefix", name)
	}
	return v, nil
}
