package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// appendStmts are the append path's statements, prepared on the writer
// when the ledger opens. SQLite parses a 64-row INSERT in about as long as
// it takes to run it, so preparing per transaction would double the cost.
// They cannot be prepared lazily: the writer has one connection, held by
// the transaction that would want them. database/sql re-prepares them
// should that connection ever be replaced.
type appendStmts struct {
	insert map[int]*sql.Stmt // reports, by rows: 1, 2, 4 … insertChunk
	lookup map[int]*sql.Stmt // report ids, by ids: 1, 2, 4 … idLookupChunk
	upsert *sql.Stmt         // one row of totals
}

// prepareAppendStmts prepares every statement an append can run on w.
func prepareAppendStmts(ctx context.Context, w *sql.DB) (*appendStmts, error) {
	s := &appendStmts{insert: map[int]*sql.Stmt{}, lookup: map[int]*sql.Stmt{}}
	prepare := func(query string) (*sql.Stmt, error) {
		st, err := w.PrepareContext(ctx, query)
		if err != nil {
			return nil, fmt.Errorf("prepare %.40s…: %w", query, err)
		}
		return st, nil
	}
	var err error
	for n := 1; n <= insertChunk && err == nil; n *= 2 {
		s.insert[n], err = prepare(insertSQL(n))
	}
	for n := 1; n <= idLookupChunk && err == nil; n *= 2 {
		s.lookup[n], err = prepare(lookupSQL(n))
	}
	if err == nil {
		s.upsert, err = prepare(upsertTotalSQL)
	}
	if err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// sized returns the statement for n rows of sizes, bound to tx. n is
// always a power of two within the prepared range; anything else is a bug
// reported as an error, not a panic.
func sized(ctx context.Context, tx *sql.Tx, sizes map[int]*sql.Stmt, n int) (*sql.Stmt, error) {
	st, ok := sizes[n]
	if !ok {
		return nil, fmt.Errorf("no statement prepared for %d rows", n)
	}
	return tx.StmtContext(ctx, st), nil
}

// close closes every statement; a nil receiver (a read-only ledger) has
// none.
func (s *appendStmts) close() error {
	if s == nil {
		return nil
	}
	var errs []error
	for _, sizes := range []map[int]*sql.Stmt{s.insert, s.lookup} {
		for _, st := range sizes {
			if st != nil {
				errs = append(errs, st.Close())
			}
		}
	}
	if s.upsert != nil {
		errs = append(errs, s.upsert.Close())
	}
	return errors.Join(errs...)
}

// pow2Floor is the largest power of two not above n (n ≥ 1).
func pow2Floor(n int) int {
	p := 1
	for p*2 <= n {
		p *= 2
	}
	return p
}

// pow2Ceil is the smallest power of two not below n.
func pow2Ceil(n int) int {
	p := 1
	for p < n {
		p *= 2
	}
	return p
}
