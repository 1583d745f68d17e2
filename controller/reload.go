package controller

import (
	"fmt"
	"strings"

	"github.com/bot-bottle/bottlecap/budget"
)

// Reload is what a settings reload did to the limits in force, so that an
// operator who edits settings.yml sees whether the edit took: a settings
// limit overridden by a runtime limit, a registration or a label changes
// nothing in force, and the reload says so.
type Reload struct {
	// Changed are the limits in force that changed, each as "scope
	// provider old → new (source)": "bottle/b1 claude 1000000 → 2000000 (settings)".
	Changed []string
	// Overridden are the settings limits that changed but stay
	// overridden: "bottle/b1 claude is set at runtime, which overrides settings".
	Overridden []string
}

// listed is how many changes a reload's line names before "and N more".
const listed = 10

// String is the reload's line for the log and the audit: "no limit in
// force changed", "no limit in force changed (bottle/b1 claude is set at
// runtime, which overrides settings)", or "2 limits in force changed:
// global claude 5000000 → 3000000 (settings), …".
func (r Reload) String() string {
	var b strings.Builder
	if len(r.Changed) == 0 {
		b.WriteString("no limit in force changed")
	} else {
		fmt.Fprintf(&b, "%d limit%s in force changed: %s", len(r.Changed), plural(len(r.Changed)), first(r.Changed, ", "))
	}
	if len(r.Overridden) > 0 {
		fmt.Fprintf(&b, " (%s)", first(r.Overridden, "; "))
	}
	return b.String()
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// first joins at most listed items, saying how many more there are.
func first(items []string, sep string) string {
	if len(items) <= listed {
		return strings.Join(items, sep)
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:listed], sep), len(items)-listed)
}

// limitKey is one provider at one scope.
type limitKey struct {
	scope    budget.Scope
	provider string
}

// reloadOf compares the limits of every scope before and after a reload
// (Book.LimitSources, in its order).
func reloadOf(before, after []budget.LimitSource) Reload {
	was, wasSettings := inForceAndSettings(before)
	now, nowSettings := inForceAndSettings(after)
	var r Reload
	for _, k := range keysOf(before, after) {
		old, had := was[k]
		cur, has := now[k]
		switch {
		case had != has || (had && old.Limits.String() != cur.Limits.String()):
			r.Changed = append(r.Changed, fmt.Sprintf("%s %s %s", scopePath(k.scope), k.provider, change(old, had, cur, has)))
		case has && cur.Source != budget.SourceSettings && wasSettings[k] != nowSettings[k]:
			r.Overridden = append(r.Overridden, fmt.Sprintf("%s %s is set %s, which overrides settings", scopePath(k.scope), k.provider, setBy(cur.Source)))
		}
	}
	return r
}

// inForceAndSettings indexes sources: the one in force of each key, and
// what settings set for it (written out; "" for nothing).
func inForceAndSettings(sources []budget.LimitSource) (map[limitKey]budget.LimitSource, map[limitKey]string) {
	inForce, settings := map[limitKey]budget.LimitSource{}, map[limitKey]string{}
	for _, ls := range sources {
		k := limitKey{ls.Scope, ls.Provider}
		if !ls.Overridden {
			inForce[k] = ls
		}
		if ls.Source == budget.SourceSettings {
			settings[k] = ls.Limits.String()
		}
	}
	return inForce, settings
}

// keysOf lists every key of both listings once, in their order.
func keysOf(lists ...[]budget.LimitSource) []limitKey {
	seen := map[limitKey]bool{}
	var out []limitKey
	for _, l := range lists {
		for _, ls := range l {
			k := limitKey{ls.Scope, ls.Provider}
			if !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	return out
}

// change writes a limit's change: "1000000 → 2000000/day (settings)",
// "1000000 (runtime) → 5000000 (settings)", "none → 1000000 (settings)".
func change(old budget.LimitSource, had bool, cur budget.LimitSource, has bool) string {
	switch {
	case !had:
		return fmt.Sprintf("none → %s (%s)", cur.Limits, cur.Source)
	case !has:
		return fmt.Sprintf("%s (%s) → none", old.Limits, old.Source)
	case old.Source == cur.Source:
		return fmt.Sprintf("%s → %s (%s)", old.Limits, cur.Limits, cur.Source)
	}
	return fmt.Sprintf("%s (%s) → %s (%s)", old.Limits, old.Source, cur.Limits, cur.Source)
}

// setBy names a source in a sentence: "is set at runtime".
func setBy(s budget.Source) string {
	switch s {
	case budget.SourceRuntime:
		return "at runtime"
	case budget.SourceLabel:
		return "by a container label"
	}
	return "at registration"
}
