package budget

import (
	"errors"
	"fmt"
)

// Rebuild is the book the ledger's rows describe: the daemon's on start,
// and the dashboard's on each frame, so that both resolve from the same
// picture. Bottles come first (so lineage is known before usage counts
// toward subtrees), then the runtime budgets, then the usage totals.
//
// Of the budget rows only the global scope's apply: the daemon keeps a
// bottle's and its agents' runtime limits on the bottle itself (Budget,
// AgentBudgets), which is where they are read back from, and writes only
// (ScopeGlobal, "-") rows. A bottle or agent row in the budgets table was
// not written by the daemon, so it is not in force and is not applied.
//
// A bottle the book refuses (a bad slug, a parent cycle) is left out and
// named in the error, joined with the others; the rest of the book is
// built all the same, for a caller that only displays it. The daemon
// refuses to start on such an error.
func Rebuild(s *Settings, bottles []Bottle, budgets []ScopeBudget, totals []Total) (*Book, error) {
	book := NewBook(s)
	var errs []error
	for _, bt := range bottles {
		if err := book.Register(bt); err != nil {
			errs = append(errs, fmt.Errorf("bottle %s: %w", bt.Slug, err))
		}
	}
	for _, b := range budgets {
		if b.Scope == ScopeGlobal {
			book.SetGlobal(b.Limits)
		}
	}
	for _, t := range totals {
		book.Add(t.Bottle, t.Agent, t.Provider, t.Counted)
	}
	return book, errors.Join(errs...)
}
