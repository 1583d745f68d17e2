package store

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/bot-bottle/bottlecap/budget"
)

// update runs fn in a write transaction, the shape every write takes:
// begin, deferred rollback, private helper, commit. Errors are classified
// once here and wrapped with what.
func (db *DB) update(ctx context.Context, what string, fn func(*sql.Tx) error) error {
	w, err := db.writer()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	tx, err := w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%s: begin: %w", what, classify(err))
	}
	defer tx.Rollback()

	if err := fn(tx); err != nil {
		db.health.note(err)
		return fmt.Errorf("%s: %w", what, classify(err))
	}
	if err := tx.Commit(); err != nil {
		db.health.note(err)
		return fmt.Errorf("%s: commit: %w", what, classify(err))
	}
	db.health.note(nil)
	if err := db.files.check(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	db.ckpt.committed()
	return nil
}

// mustChange turns an Exec that changed no row into budget.ErrNotFound.
func mustChange(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return budget.ErrNotFound
	}
	return nil
}
