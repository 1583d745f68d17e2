package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/bot-bottle/bottlecap/budget"
)

// genesisHash is the PrevHash of the first audit entry.
var genesisHash = strings.Repeat("0", 64)

// AppendAudit appends e to the audit log and returns it with Seq, TS (now,
// unless set), PrevHash and Hash filled in. The chain link is read and
// written in one transaction on the single writer, so entries cannot fork.
func (db *DB) AppendAudit(ctx context.Context, e budget.AuditEntry) (budget.AuditEntry, error) {
	if e.Kind == "" {
		return budget.AuditEntry{}, fmt.Errorf("append audit: %w: kind is required", budget.ErrInvalid)
	}
	if e.TS.IsZero() {
		e.TS = fromNanos(db.now())
	}
	err := db.update(ctx, "append audit "+e.Kind, func(tx *sql.Tx) error {
		var err error
		e, err = appendAudit(ctx, tx, e)
		return err
	})
	if err != nil {
		return budget.AuditEntry{}, err
	}
	return e, nil
}

func appendAudit(ctx context.Context, tx *sql.Tx, e budget.AuditEntry) (budget.AuditEntry, error) {
	var lastSeq int64
	lastHash := genesisHash
	err := tx.QueryRowContext(ctx, `SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`).Scan(&lastSeq, &lastHash)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return e, err
	}
	e.Seq, e.PrevHash = lastSeq+1, lastHash
	e.TS = fromNanos(toNanos(e.TS)) // the stored precision and zone, so Hash matches what is read back
	e.Hash = auditHash(e)
	_, err = tx.ExecContext(ctx, `INSERT INTO audit (seq, ts, kind, bottle, detail, prev_hash, hash)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, e.Seq, toNanos(e.TS), e.Kind, e.Bottle, e.Detail, e.PrevHash, e.Hash)
	return e, err
}

// auditHash is the hex SHA-256 of the previous entry's hash and this
// entry's canonical content (a JSON object with fixed field order, so that
// no choice of detail text can collide with another entry's fields).
func auditHash(e budget.AuditEntry) string {
	content, _ := json.Marshal(struct {
		Seq    int64  `json:"seq"`
		TS     int64  `json:"ts"`
		Kind   string `json:"kind"`
		Bottle string `json:"bottle"`
		Detail string `json:"detail"`
	}{e.Seq, toNanos(e.TS), e.Kind, e.Bottle, e.Detail}) // cannot fail: strings and integers
	h := sha256.New()
	h.Write([]byte(e.PrevHash))
	h.Write([]byte{'\n'})
	h.Write(content)
	return hex.EncodeToString(h.Sum(nil))
}

// Audit returns audit entries, newest first; bottle "" means all and limit
// <= 0 means no limit.
func (db *DB) Audit(ctx context.Context, bottle string, limit int) ([]budget.AuditEntry, error) {
	if limit <= 0 {
		limit = -1
	}
	q := `SELECT seq, ts, kind, bottle, detail, prev_hash, hash FROM audit`
	args := []any{}
	if bottle != "" {
		q += ` WHERE bottle = ?`
		args = append(args, bottle)
	}
	rows, err := db.read.QueryContext(ctx, q+` ORDER BY seq DESC LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", classify(err))
	}
	defer rows.Close()
	var all []budget.AuditEntry
	err = scanAudit(rows, func(e budget.AuditEntry) error { all = append(all, e); return nil })
	if err != nil {
		return nil, fmt.Errorf("audit: %w", classify(err))
	}
	return all, nil
}

func scanAudit(rows *sql.Rows, fn func(budget.AuditEntry) error) error {
	for rows.Next() {
		var e budget.AuditEntry
		var ts int64
		if err := rows.Scan(&e.Seq, &ts, &e.Kind, &e.Bottle, &e.Detail, &e.PrevHash, &e.Hash); err != nil {
			return err
		}
		e.TS = fromNanos(ts)
		if err := fn(e); err != nil {
			return err
		}
	}
	return rows.Err()
}

// VerifyAudit walks the whole chain, oldest first, and returns a
// *ChainError naming the first entry that is missing, out of order, not
// linked to its predecessor or not matching its own hash. (Removing the
// newest entries leaves a valid shorter chain: the chain proves that what is
// there was not edited, not that nothing was cut off the end.)
func (db *DB) VerifyAudit(ctx context.Context) error {
	rows, err := db.read.QueryContext(ctx,
		`SELECT seq, ts, kind, bottle, detail, prev_hash, hash FROM audit ORDER BY seq`)
	if err != nil {
		return fmt.Errorf("verify audit: %w", classify(err))
	}
	defer rows.Close()
	prev := budget.AuditEntry{Hash: genesisHash}
	var good int64
	err = scanAudit(rows, func(e budget.AuditEntry) error {
		if err := checkLink(prev, e); err != nil {
			err.Good = good
			return err
		}
		prev = e
		good++
		return nil
	})
	var ce *budget.ChainError
	if errors.As(err, &ce) {
		return err
	}
	if err != nil {
		return fmt.Errorf("verify audit: %w", classify(err))
	}
	return nil
}

func checkLink(prev, e budget.AuditEntry) *budget.ChainError {
	switch {
	case e.Seq != prev.Seq+1:
		return &budget.ChainError{Seq: e.Seq, Reason: fmt.Sprintf("follows seq %d", prev.Seq)}
	case e.PrevHash != prev.Hash:
		return &budget.ChainError{Seq: e.Seq, Reason: "prev_hash is not the previous entry's hash"}
	case e.Hash != auditHash(e):
		return &budget.ChainError{Seq: e.Seq, Reason: "hash does not match the entry's content"}
	}
	return nil
}
