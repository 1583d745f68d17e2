package store

import (
	"context"
	"database/sql"
	"fmt"
)

// stmtCache holds the append path's statements, prepared on the writer
// when the ledger opens. SQLite parses a 64-row INSERT in about as long as
// it takes to run it, so preparing per transaction would double the cost.
// They cannot be prepared lazily: the writer has one connection, held by
// the transaction that would want them. database/sql re-prepares them
// should that connection ever be replaced.
type stmtCache map[string]*sql.Stmt

// appendQueries are every statement an append can run: inserts and id
// lookups in power-of-two sizes, and the totals upsert.
func appendQueries() []string {
	qs := []string{upsertTotalSQL}
	for n := 1; n <= insertChunk; n *= 2 {
		qs = append(qs, insertSQL(n))
	}
	for n := 1; n <= idLookupChunk; n *= 2 {
		qs = append(qs, lookupSQL(n))
	}
	return qs
}

// prepareStmts prepares queries on w.
func prepareStmts(ctx context.Context, w *sql.DB, queries []string) (stmtCache, error) {
	c := stmtCache{}
	for _, q := range queries {
		st, err := w.PrepareContext(ctx, q)
		if err != nil {
			c.close()
			return nil, fmt.Errorf("prepare %.40s…: %w", q, err)
		}
		c[q] = st
	}
	return c, nil
}

// in returns the prepared query bound to tx.
func (c stmtCache) in(ctx context.Context, tx *sql.Tx, query string) (*sql.Stmt, error) {
	st, ok := c[query]
	if !ok {
		return nil, fmt.Errorf("statement not prepared at open: %.40s…", query)
	}
	return tx.StmtContext(ctx, st), nil
}

// close closes every statement.
func (c stmtCache) close() error {
	var first error
	for _, st := range c {
		if err := st.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
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
