package tui

import (
	"sort"
	"strings"
)

// SortMode orders the table. Sorting never breaks the parent tree: it
// orders siblings, each by the highest value in its subtree, so the branch
// holding the hottest bottle rises to the top.
type SortMode int

// The sort orders `s` cycles through, usage first.
const (
	SortUsage SortMode = iota
	SortBurn
	SortName
	sortModes
)

// String names the order in the status line.
func (m SortMode) String() string {
	return [...]string{"usage %", "burn rate", "name"}[m]
}

func (m SortMode) next() SortMode { return (m + 1) % sortModes }

// value is a row's sort key; higher first. Name order uses slugs instead.
func (m SortMode) value(r Row) float64 {
	switch m {
	case SortUsage:
		if r.Unlimited {
			return -1
		}
		return r.Percent
	case SortBurn:
		return r.Burn
	}
	return 0
}

type treeNode struct {
	row  Row
	kids []*treeNode
	key  float64
}

// sortRows returns rows (in tree order, with depths) re-ordered by mode
// among siblings.
func sortRows(rows []Row, mode SortMode) []Row {
	roots := forest(rows)
	for _, n := range roots {
		n.score(mode)
	}
	out := make([]Row, 0, len(rows))
	return flatten(roots, mode, out)
}

// forest rebuilds the tree from rows in depth-first order.
func forest(rows []Row) []*treeNode {
	var roots []*treeNode
	var stack []*treeNode
	for _, r := range rows {
		n := &treeNode{row: r}
		for len(stack) > 0 && stack[len(stack)-1].row.Depth >= r.Depth {
			stack = stack[:len(stack)-1]
		}
		if len(stack) == 0 {
			roots = append(roots, n)
		} else {
			p := stack[len(stack)-1]
			p.kids = append(p.kids, n)
		}
		stack = append(stack, n)
	}
	return roots
}

func (n *treeNode) score(mode SortMode) float64 {
	n.key = mode.value(n.row)
	for _, k := range n.kids {
		n.key = max(n.key, k.score(mode))
	}
	return n.key
}

func flatten(ns []*treeNode, mode SortMode, out []Row) []Row {
	sort.SliceStable(ns, func(i, j int) bool {
		if mode != SortName && ns[i].key != ns[j].key {
			return ns[i].key > ns[j].key
		}
		return ns[i].row.Slug < ns[j].row.Slug
	})
	for _, n := range ns {
		out = append(out, n.row)
		out = flatten(n.kids, mode, out)
	}
	return out
}

// filterRows keeps rows whose slug, agent, bottle name, provider, scope or
// state contains q (case-insensitive). Matches keep their indentation.
func filterRows(rows []Row, q string) []Row {
	q = strings.ToLower(strings.TrimSpace(q))
	if q == "" {
		return rows
	}
	var out []Row
	for _, r := range rows {
		if rowMatches(r, q) {
			out = append(out, r)
		}
	}
	return out
}

func rowMatches(r Row, q string) bool {
	fields := append([]string{r.Slug, r.Agent, r.Name, r.Parent, scopeLabel(r.Scope), stateText(r.State)}, r.Providers...)
	for _, f := range fields {
		if strings.Contains(strings.ToLower(f), q) {
			return true
		}
	}
	return false
}
