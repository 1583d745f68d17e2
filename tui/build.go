package tui

import (
	"fmt"
	"sort"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
)

// Input is what a snapshot is computed from: the store's rows, the
// settings and the clock. Build is pure so fakes, tests and the frame
// benchmark compute exactly what the real source does.
type Input struct {
	Now      time.Time
	Settings *budget.Settings
	Bottles  []budget.Bottle
	Budgets  []budget.ScopeBudget
	Totals   []budget.Total
	Actions  []budget.Action // oldest first
	// Buckets are the usage windows: Build needs the burn window (buckets
	// of any width that start inside it), BuildDetail the sparkline's half
	// hour in seriesStep buckets.
	Buckets []budget.UsageBucket
	// Windows are the usage of every window a limit uses, read from the
	// ledger as the daemon reads it (budget.WindowLoadsFor).
	Windows []budget.WindowLoad
	Audit   []api.AuditEntry
}

// Build computes a snapshot (without Detail) from its inputs.
func Build(in Input) Snapshot {
	if in.Settings == nil {
		in.Settings = budget.DefaultSettings()
	}
	book := newBook(in)
	burn := newBurns(in.Buckets, in.Now, book)
	snap := Snapshot{Now: in.Now, Audit: in.Audit, Precedence: in.Settings.Precedence, WarnAt: in.Settings.WarnAt}
	providers := book.Providers()
	snap.Providers = globalUsage(book, providers, burn)
	acts := latestActions(in.Actions)
	for _, n := range treeOrder(in.Bottles) {
		snap.Rows = append(snap.Rows, buildRow(book, n, providers, burn, acts, in.Settings.WarnAt))
	}
	return snap
}

// newBook rebuilds the daemon's picture from the store's rows, with the
// daemon's own rebuild, so that the dashboard resolves what the gate does.
func newBook(in Input) *budget.Book {
	// A bottle the book refuses (the daemon would not start on it) is left
	// out of the picture; the dashboard only displays, and shows the rest.
	book, _ := budget.Rebuild(in.Settings, in.Bottles, in.Budgets, in.Totals)
	book.Advance(in.Now)
	book.LoadWindows(in.Windows)
	return book
}

// splitAgentID is the slug and agent of an agent scope's "slug/agent" id.
func splitAgentID(id string) (slug, agent string) {
	for i := 0; i < len(id); i++ {
		if id[i] == '/' {
			return id[:i], id[i+1:]
		}
	}
	return id, ""
}

// globalUsage is the header: host-wide usage per provider.
func globalUsage(book *budget.Book, providers []string, burn *burns) []ProviderUsage {
	out := make([]ProviderUsage, 0, len(providers))
	for _, p := range providers {
		v := book.GlobalVerdict(p)
		out = append(out, ProviderUsage{Provider: p, Used: v.Used, Limit: v.Limit, Unlimited: v.Unlimited, Burn: burn.global[p],
			Window: v.Window, ResetsAt: v.ResetsAt})
	}
	return out
}

// node is a bottle placed in the parent tree.
type node struct {
	bottle budget.Bottle
	depth  int
}

// treeOrder lists bottles depth-first: roots (no parent, or a parent the
// store no longer knows) by slug, each followed by its children by slug.
func treeOrder(bottles []budget.Bottle) []node {
	known := make(map[string]bool, len(bottles))
	for _, b := range bottles {
		known[b.Slug] = true
	}
	children := map[string][]budget.Bottle{}
	var roots []budget.Bottle
	for _, b := range bottles {
		if b.Parent == "" || !known[b.Parent] || b.Parent == b.Slug {
			roots = append(roots, b)
			continue
		}
		children[b.Parent] = append(children[b.Parent], b)
	}
	out := make([]node, 0, len(bottles))
	seen := make(map[string]bool, len(bottles))
	var walk func(bs []budget.Bottle, depth int)
	walk = func(bs []budget.Bottle, depth int) {
		sort.Slice(bs, func(i, j int) bool { return bs[i].Slug < bs[j].Slug })
		for _, b := range bs {
			if seen[b.Slug] {
				continue
			}
			seen[b.Slug] = true
			out = append(out, node{b, depth})
			walk(children[b.Slug], depth+1)
		}
	}
	walk(roots, 0)
	return out
}

// buildRow picks the bottle's tightest provider and fills the row.
func buildRow(book *budget.Book, n node, providers []string, burn *burns, acts map[string]actionInfo, warnAt float64) Row {
	bt := n.bottle
	r := Row{Slug: bt.Slug, Parent: bt.Parent, Depth: n.depth, Agent: bt.Agent, Name: bt.Name, ETA: -1}
	var best budget.Verdict
	found := false
	for _, p := range providers {
		v := book.Verdict(bt.Slug, bt.Agent, p, 0)
		if !concerns(book, bt, v) {
			continue
		}
		r.Providers = append(r.Providers, p)
		if !found || tighter(v, best) {
			best, found = v, true
		}
	}
	if found {
		fillUsage(&r, best, burn)
	} else {
		r.Unlimited, r.Scope = true, budget.Scope{Kind: "none"}
	}
	r.State, r.Reason = rowState(bt, best, found, acts[bt.Slug], r.Percent, warnAt)
	if stopped(r.State) {
		r.Burn, r.ETA = 0, -1 // tokens it spent before it stopped are not a rate it keeps
	}
	return r
}

// stopped reports whether a bottle's containers no longer run: frozen
// (committed and stopped) or killed (removed). Such a bottle spends
// nothing, so it has no burn rate and no time to exhaustion, and `h`
// hides it as `docker ps` hides exited containers. Cut off and paused
// bottles still run, and stay in view. (A bottle removed from the ledger
// with `bottle rm` is gone from the store and so from the table.)
func stopped(s budget.State) bool { return s == budget.Frozen || s == budget.Killed }

// concerns reports whether a provider belongs on a bottle's row: the
// bottle's subtree used it, or a budget nearer than the host's limits it.
// The global budget alone does not put every provider on every row.
func concerns(book *budget.Book, bt budget.Bottle, v budget.Verdict) bool {
	if _, subtree, _ := book.Used(bt.Slug, bt.Agent, v.Provider); subtree > 0 {
		return true
	}
	return !v.Unlimited && v.Scope.Kind != budget.ScopeGlobal
}

// tighter reports whether a is closer to exhaustion than b: a limited
// budget before an unlimited one, then the higher fraction, then more used.
func tighter(a, b budget.Verdict) bool {
	if a.Unlimited != b.Unlimited {
		return !a.Unlimited
	}
	if !a.Unlimited && fraction(a) != fraction(b) {
		return fraction(a) > fraction(b)
	}
	return a.Used > b.Used
}

func fraction(v budget.Verdict) float64 { return ratio(v.Used, v.Limit) }

// ratio is used/limit; a zero limit is exhausted by the first token.
func ratio(used, limit int64) float64 {
	if limit <= 0 {
		if used > 0 {
			return 1e9
		}
		return 1
	}
	return float64(used) / float64(limit)
}

func fillUsage(r *Row, v budget.Verdict, burn *burns) {
	r.Provider, r.Used, r.Limit, r.Unlimited, r.Scope = v.Provider, v.Used, v.Limit, v.Unlimited, v.Scope
	r.Window, r.ResetsAt = v.Window, v.ResetsAt
	r.Burn = burn.subtree[bottleProvider{r.Slug, v.Provider}]
	if v.Unlimited {
		return
	}
	r.Percent = 100 * fraction(v)
	scopeBurn := burn.scope(v.Scope, v.Provider)
	switch {
	case v.Remaining <= 0:
		r.ETA = 0
	case scopeBurn > 0:
		r.ETA = time.Duration(float64(v.Remaining) / scopeBurn * float64(time.Minute))
	}
}

// rowState is the state the table shows: an action in flight shows as
// pending; a stored blocked state keeps its action's reason; an exhausted
// budget names itself; past the warn threshold an active bottle shows as
// warned.
func rowState(bt budget.Bottle, v budget.Verdict, limited bool, act actionInfo, pct, warnAt float64) (budget.State, string) {
	if act.pending != nil {
		a := act.pending
		reason := fmt.Sprintf("%s pending: %s", a.Kind, a.Reason)
		if a.LastError != "" {
			reason += fmt.Sprintf(" (attempt %d: %s)", a.Attempts, a.LastError)
		}
		return budget.Pending, reason
	}
	if bt.State.Blocked() {
		if act.done != nil {
			return bt.State, act.done.Reason
		}
		return bt.State, bt.StateReason
	}
	if limited && !v.Unlimited && v.Remaining <= 0 {
		return bt.State, fmt.Sprintf("%s exhausted", v.Scope)
	}
	if bt.State == budget.Warned || (limited && !v.Unlimited && pct >= warnAt*100) {
		return budget.Warned, fmt.Sprintf("past %.0f%% of the %s", warnAt*100, v.Scope)
	}
	return bt.State, bt.StateReason
}

// actionInfo is a bottle's action in flight and its last finished one.
type actionInfo struct {
	pending *budget.Action
	done    *budget.Action
}

func latestActions(as []budget.Action) map[string]actionInfo {
	out := map[string]actionInfo{}
	for i := range as {
		a := &as[i]
		info := out[a.Bottle]
		if a.Status == budget.StatusPending {
			info.pending = a
		} else if a.Status == budget.StatusDone {
			info.done = a
		}
		out[a.Bottle] = info
	}
	return out
}
