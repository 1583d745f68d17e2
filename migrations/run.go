package migrations

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Run applies every pending migration to db, each in its own transaction
// together with its schema_version row, so a crash leaves the schema at a
// known version. Running it again is a no-op.
func Run(ctx context.Context, db *sql.DB) error {
	if _, err := db.ExecContext(ctx, createVersionTable); err != nil {
		return fmt.Errorf("create schema_version: %w", err)
	}
	all, err := All()
	if err != nil {
		return err
	}
	for _, m := range all {
		if err := apply(ctx, db, m); err != nil {
			return err
		}
	}
	return nil
}

// apply runs one migration unless schema_version says it already ran. The
// check is inside the transaction so two openers cannot both apply it.
func apply(ctx context.Context, db *sql.DB, m Migration) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migration %s: begin: %w", m.Name, err)
	}
	defer tx.Rollback()

	var n int
	err = tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_version WHERE version = ?`, m.Version).Scan(&n)
	if err != nil {
		return fmt.Errorf("migration %s: check: %w", m.Name, err)
	}
	if n > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return fmt.Errorf("migration %s: %w", m.Name, err)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)`,
		m.Version, m.Name, time.Now().UnixNano())
	if err != nil {
		return fmt.Errorf("migration %s: record: %w", m.Name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migration %s: commit: %w", m.Name, err)
	}
	return nil
}

// Current returns the highest applied version, or 0 when schema_version does
// not exist. It only reads, so a read-only connection can call it.
func Current(ctx context.Context, db *sql.DB) (int, error) {
	var exists int
	err := db.QueryRowContext(ctx,
		`SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'schema_version'`).Scan(&exists)
	if err != nil {
		return 0, fmt.Errorf("read schema: %w", err)
	}
	if exists == 0 {
		return 0, nil
	}
	var v sql.NullInt64
	if err := db.QueryRowContext(ctx, `SELECT max(version) FROM schema_version`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema_version: %w", err)
	}
	return int(v.Int64), nil
}

// Check fails with ErrSchema unless db is at least at Latest. A newer schema
// is accepted: migrations only add, so an older reader still understands it.
func Check(ctx context.Context, db *sql.DB) error {
	cur, err := Current(ctx, db)
	if err != nil {
		return err
	}
	latest, err := Latest()
	if err != nil {
		return err
	}
	if cur < latest {
		if cur == 0 {
			return fmt.Errorf("%w: no bottlecap schema (has the daemon ever run on this file?)", ErrSchema)
		}
		return fmt.Errorf("%w: at version %d, want %d (start the daemon to migrate)", ErrSchema, cur, latest)
	}
	return nil
}
