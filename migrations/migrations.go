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
func All() ([]Migration, error) { return Load(FS, "*.sql", "migration") }

// Load reads the numbered migrations (NNNN_name.sql) that pattern matches
// in fsys, in version order, with the rules of All; label names them in
// errors ("migration", "fleet migration"). The fleet's Postgres schema is
// read by the same rules as the ledger's.
func Load(fsys fs.FS, pattern, label string) ([]Migration, error) {
	names, err := fs.Glob(fsys, pattern)
	if err != nil {
		return nil, fmt.Errorf("list %ss: %w", label, err)
	}
	var all []Migration
	seen := map[int]string{}
	for _, name := range names {
		v, err := version(name)
		if err != nil {
			return nil, fmt.Errorf("%s %w", label, err)
		}
		if prev, ok := seen[v]; ok {
			return nil, fmt.Errorf("%ss %s and %s share version %d", label, prev, name, v)
		}
		seen[v] = name
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("read %s %s: %w", label, name, err)
		}
		all = append(all, Migration{Version: v, Name: path.Base(name), SQL: string(body)})
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
		return 0, fmt.Errorf("%s: want NNNN_name.sql", name)
	}
	v, err := strconv.Atoi(prefix)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("%s: want NNNN_name.sql with a positive version prefix", name)
	}
	return v, nil
}
