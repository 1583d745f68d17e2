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
// The budget rows are the runtime limits of every scope; a bottle's row
// holds its registration and labels (Budget, LabelBudget, AgentBudgets).
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
		book.SetRuntime(Scope{b.Scope, b.ID}, b.Limits)
	}
	for _, t := range totals {
		book.Add(t.Bottle, t.Agent, t.Provider, t.Counted)
	}
	return book, errors.Join(errs...)
}
