package fleet

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// migrationFS holds the fleet schema as numbered SQL files
// (NNNN_name.sql), like the local ledger's.
//
//go:embed migrations/*.sql
var migrationFS embed.FS

// migration is one numbered schema change.
type migration struct {
	version int
	name    string
	sql     string
}

// migrationLock is the pg_advisory_xact_lock key that serialises
// migrations: daemons starting together apply each one once.
const migrationLock int64 = 0x626f74746c656361 // "bottleca"

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS fleet_schema_migrations (
	version    integer     PRIMARY KEY,
	name       text        NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now()
)`

// migrations are the embedded migrations in version order. A file without
// a version prefix, or two with one version, is an error (the tests catch
// it before a user's start-up does).
func migrations() ([]migration, error) {
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return nil, fmt.Errorf("list fleet migrations: %w", err)
	}
	var all []migration
	seen := map[int]string{}
	for _, name := range names {
		v, err := migrationVersion(name)
		if err != nil {
			return nil, err
		}
		if prev, ok := seen[v]; ok {
			return nil, fmt.Errorf("fleet migrations %s and %s share version %d", prev, name, v)
		}
		seen[v] = name
		body, err := migrationFS.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("read fleet migration %s: %w", name, err)
		}
		all = append(all, migration{version: v, name: path.Base(name), sql: string(body)})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].version < all[j].version })
	return all, nil
}

func migrationVersion(name string) (int, error) {
	prefix, _, ok := strings.Cut(path.Base(name), "_")
	v, err := strconv.Atoi(prefix)
	if !ok || err != nil || v <= 0 {
		return 0, fmt.Errorf("fleet migration %s: want NNNN_name.sql with a positive version", name)
	}
	return v, nil
}

// migrate applies the pending migrations in one transaction under an
// advisory lock, each recorded in fleet_schema_migrations: all or none is
// applied, and a daemon starting alongside waits, then finds them done.
// Versions the database has beyond this binary's (a newer daemon in the
// fleet) are left alone.
func (db *DB) migrate(ctx context.Context) error {
	all, err := migrations()
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrationLock); err != nil {
			return fmt.Errorf("fleet migrations: lock: %w", err)
		}
		if _, err := tx.Exec(ctx, createMigrationsTable); err != nil {
			return fmt.Errorf("fleet migrations: %w", err)
		}
		applied, err := appliedVersions(ctx, tx)
		if err != nil {
			return err
		}
		for _, m := range all {
			if applied[m.version] {
				continue
			}
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return fmt.Errorf("fleet migration %s: %w", m.name, err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO fleet_schema_migrations (version, name) VALUES ($1, $2)", m.version, m.name); err != nil {
				return fmt.Errorf("record fleet migration %s: %w", m.name, err)
			}
		}
		return nil
	})
}

func appliedVersions(ctx context.Context, tx pgx.Tx) (map[int]bool, error) {
	rows, err := tx.Query(ctx, "SELECT version FROM fleet_schema_migrations")
	if err != nil {
		return nil, fmt.Errorf("fleet migrations: %w", err)
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil, fmt.Errorf("fleet migrations: %w", err)
	}
	applied := make(map[int]bool, len(versions))
	for _, v := range versions {
		applied[int(v)] = true
	}
	return applied, nil
}
