package fleet

import (
	"context"
	"embed"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/bot-bottle/bottlecap/migrations"
)

// migrationFS holds the fleet schema as numbered SQL files
// (NNNN_name.sql), like the local ledger's.
//
//go:embed migrations/*.sql
var migrationFS embed.FS

// migrationLock is the pg_advisory_xact_lock key that serialises
// migrations: daemons starting together apply each one once.
const migrationLock int64 = 0x626f74746c656361 // "bottleca"

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS fleet_schema_migrations (
	version    integer     PRIMARY KEY,
	name       text        NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now()
)`

// fleetMigrations are the embedded migrations in version order, read by
// the ledger's rules (a file without a version prefix, or two with one
// version, is an error the tests catch before a user's start-up does).
func fleetMigrations() ([]migrations.Migration, error) {
	return migrations.Load(migrationFS, "migrations/*.sql", "fleet migration")
}

// migrate applies the pending migrations in one transaction under an
// advisory lock, each recorded in fleet_schema_migrations: all or none is
// applied, and a daemon starting alongside waits, then finds them done.
// Versions the database has beyond this binary's (a newer daemon in the
// fleet) are left alone.
func (db *DB) migrate(ctx context.Context) error {
	all, err := fleetMigrations()
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
			if applied[m.Version] {
				continue
			}
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return fmt.Errorf("fleet migration %s: %w", m.Name, err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO fleet_schema_migrations (version, name) VALUES ($1, $2)", m.Version, m.Name); err != nil {
				return fmt.Errorf("record fleet migration %s: %w", m.Name, err)
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
