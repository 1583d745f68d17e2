package budget_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/bot-bottle/bottlecap/budget"
)

// sources are the limits one test puts at each source, for bottle b1
// (manifest name dev, agent a): what settings give the name dev (and the
// agent name a), its registration, its labels, and runtime.
type sources struct {
	settings, registration, label, runtime string // claude's limits as the CLI writes them; "" for none
	agent                                  bool   // at the agent scope b1/a instead of the bottle's
}

func mustSet(t *testing.T, s string) budget.LimitSet {
	t.Helper()
	set, err := budget.ParseLimitSet(s)
	if err != nil {
		t.Fatalf("limits %q: %v", s, err)
	}
	return set
}

// claude is limits of claude alone, or nil for "".
func claude(t *testing.T, s string) budget.Limits {
	if s == "" {
		return nil
	}
	return budget.Limits{"claude": mustSet(t, s)}
}

// book puts the sources in a book in the order the daemon gets them.
func (src sources) book(t *testing.T) *budget.Book {
	t.Helper()
	s := budget.DefaultSettings()
	bt := budget.Bottle{Slug: "b1", Name: "dev", Agent: "a"}
	scope := budget.Scope{Kind: budget.ScopeBottle, ID: "b1"}
	if src.agent {
		s.Agents["a"] = budget.Defaults{Budget: claude(t, src.settings)}
		if l := claude(t, src.registration); l != nil {
			bt.AgentBudgets = map[string]budget.Limits{"a": l}
		}
		scope = budget.Scope{Kind: budget.ScopeAgent, ID: "b1/a"}
	} else {
		s.Bottles["dev"] = budget.Defaults{Budget: claude(t, src.settings)}
		bt.Budget, bt.LabelBudget = claude(t, src.registration), claude(t, src.label)
	}
	b := budget.NewBook(s)
	if err := b.Register(bt); err != nil {
		t.Fatal(err)
	}
	if l := claude(t, src.runtime); l != nil {
		b.SetRuntime(scope, l)
	}
	return b
}

// listed writes a book's sources as "source limits" lines, "(overridden)"
// marking those not in force.
func listed(b *budget.Book) []string {
	var out []string
	for _, ls := range b.LimitSources() {
		line := string(ls.Kind) + "/" + ls.ID + " " + ls.Provider + " " + string(ls.Source) + " " + ls.Limits.String()
		if ls.Overridden {
			line += " (overridden)"
		}
		out = append(out, line)
	}
	return out
}

// TestSourcePrecedence: at one scope, for one provider, runtime beats
// registration and labels, which beat settings; the limit in force is
// the winner's whole set (its windows and no other source's), and the
// others are listed as overridden.
func TestSourcePrecedence(t *testing.T) {
	tests := []struct {
		name   string
		src    sources
		limit  int64  // the verdict's governing limit
		window string // and its window
		want   []string
	}{
		{"settings alone", sources{settings: "5M/day"}, 5_000_000, "day",
			[]string{"bottle/b1 claude settings 5000000/day"}},
		{"registration over settings", sources{settings: "5M/day", registration: "1M"}, 1_000_000, "life",
			[]string{"bottle/b1 claude registration 1000000", "bottle/b1 claude settings 5000000/day (overridden)"}},
		{"label over settings", sources{settings: "5M", label: "2M/week"}, 2_000_000, "week",
			[]string{"bottle/b1 claude label 2000000/week", "bottle/b1 claude settings 5000000 (overridden)"}},
		{"runtime over settings", sources{settings: "5M/day+50M/month", runtime: "1M/week"}, 1_000_000, "week",
			[]string{"bottle/b1 claude runtime 1000000/week", "bottle/b1 claude settings 5000000/day+50000000/month (overridden)"}},
		{"runtime over registration", sources{registration: "1M/day+9M/month", runtime: "3M"}, 3_000_000, "life",
			[]string{"bottle/b1 claude runtime 3000000", "bottle/b1 claude registration 1000000/day+9000000/month (overridden)"}},
		{"runtime over a label", sources{label: "1M", runtime: "500k/5h"}, 500_000, "5h",
			[]string{"bottle/b1 claude runtime 500000/5h", "bottle/b1 claude label 1000000 (overridden)"}},
		{"runtime over registration over settings", sources{settings: "7M/month", registration: "6M", runtime: "8M/day"}, 8_000_000, "day",
			[]string{"bottle/b1 claude runtime 8000000/day", "bottle/b1 claude registration 6000000 (overridden)",
				"bottle/b1 claude settings 7000000/month (overridden)"}},
		{"agent: registration over settings", sources{agent: true, settings: "200k", registration: "100k/day"}, 100_000, "day",
			[]string{"agent/b1/a claude registration 100000/day", "agent/b1/a claude settings 200000 (overridden)"}},
		{"agent: runtime over registration and settings", sources{agent: true, settings: "200k", registration: "100k", runtime: "50k/week"}, 50_000, "week",
			[]string{"agent/b1/a claude runtime 50000/week", "agent/b1/a claude registration 100000 (overridden)",
				"agent/b1/a claude settings 200000 (overridden)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.src.book(t)
			if v := b.Verdict("b1", "a", "claude", 0); v.Limit != tt.limit || v.Window != tt.window {
				t.Errorf("verdict: limit %d over %s, want %d over %s", v.Limit, v.Window, tt.limit, tt.window)
			}
			if got := listed(b); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("sources:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

// TestGlobalSources: a runtime global limit beats the settings' budget:
// for its provider only.
func TestGlobalSources(t *testing.T) {
	s := budget.DefaultSettings()
	s.Budget = budget.Limits{"claude": mustSet(t, "50M/month"), "codex": mustSet(t, "2M")}
	b := budget.NewBook(s)
	b.SetRuntime(budget.Scope{Kind: budget.ScopeGlobal, ID: "-"}, claude(t, "10M/day"))
	want := []string{"global/- claude runtime 10000000/day", "global/- claude settings 50000000/month (overridden)", "global/- codex settings 2000000"}
	if got := listed(b); !reflect.DeepEqual(got, want) {
		t.Errorf("sources:\n got %q\nwant %q", got, want)
	}
	if got := b.GlobalLimits()["claude"].String(); got != "10000000/day" {
		t.Errorf("global claude in force: %s, want the runtime one", got)
	}
}

// TestRemovingARuntimeLimitBringsBackWhatItOverrode: with the runtime
// limit gone, the next source's limit is in force; with that gone too
// (a re-registration without it), the settings' is.
func TestRemovingARuntimeLimitBringsBackWhatItOverrode(t *testing.T) {
	b := sources{settings: "5M/day", registration: "2M", runtime: "1M"}.book(t)
	b1 := budget.Scope{Kind: budget.ScopeBottle, ID: "b1"}
	b.RemoveRuntime(b1, "claude")
	if v := b.Verdict("b1", "a", "claude", 0); v.Limit != 2_000_000 || v.Window != "life" {
		t.Errorf("after removing the runtime limit: %d over %s, want the registration's 2000000", v.Limit, v.Window)
	}
	bt, _ := b.Bottle("b1")
	bt.Budget = nil
	if err := b.Register(bt); err != nil {
		t.Fatal(err)
	}
	if v := b.Verdict("b1", "a", "claude", 0); v.Limit != 5_000_000 || v.Window != "day" {
		t.Errorf("after the registration's went too: %d over %s, want the settings' 5000000/day", v.Limit, v.Window)
	}
	b.RemoveRuntime(b1, "claude") // removing what is not there changes nothing
	if got := listed(b); !reflect.DeepEqual(got, []string{"bottle/b1 claude settings 5000000/day"}) {
		t.Errorf("sources: %q", got)
	}
}

// TestSettingsReloadKeepsTheRank: a reload changes a settings limit's
// value, in force where nothing overrides it and overridden where a
// runtime limit does.
func TestSettingsReloadKeepsTheRank(t *testing.T) {
	s := budget.DefaultSettings()
	s.Bottles["dev"] = budget.Defaults{Budget: claude(t, "5M")}
	b := budget.NewBook(s)
	for _, slug := range []string{"b1", "b2"} {
		if err := b.Register(budget.Bottle{Slug: slug, Name: "dev"}); err != nil {
			t.Fatal(err)
		}
	}
	b.SetRuntime(budget.Scope{Kind: budget.ScopeBottle, ID: "b1"}, claude(t, "1M"))
	s2 := budget.DefaultSettings()
	s2.Bottles["dev"] = budget.Defaults{Budget: claude(t, "3M/day")}
	b.SetSettings(s2)
	if v := b.Verdict("b1", "", "claude", 0); v.Limit != 1_000_000 {
		t.Errorf("b1: %d, want its runtime 1000000 still", v.Limit)
	}
	if v := b.Verdict("b2", "", "claude", 0); v.Limit != 3_000_000 || v.Window != "day" {
		t.Errorf("b2: %d over %s, want the new settings' 3000000/day", v.Limit, v.Window)
	}
}

// TestImplicitBottleHasNoSettingsSource: a bottle known from its reports
// only has no name the settings could match; its runtime limit is all.
func TestImplicitBottleHasNoSettingsSource(t *testing.T) {
	s := budget.DefaultSettings()
	s.Bottles[""] = budget.Defaults{Budget: claude(t, "5M")}
	s.Agents["a"] = budget.Defaults{Budget: claude(t, "7M")}
	b := budget.NewBook(s)
	if err := b.Register(budget.Bottle{Slug: "x", Agent: "a", Implicit: true}); err != nil {
		t.Fatal(err)
	}
	b.SetRuntime(budget.Scope{Kind: budget.ScopeBottle, ID: "x"}, claude(t, "1M"))
	if got := listed(b); !reflect.DeepEqual(got, []string{"bottle/x claude runtime 1000000"}) {
		t.Errorf("sources: %q", got)
	}
}

// TestScopeSources: one scope's sources with where to change each; an
// unknown bottle is not found.
func TestScopeSources(t *testing.T) {
	b := sources{settings: "5M", label: "1M"}.book(t)
	got, err := b.ScopeSources(budget.Scope{Kind: budget.ScopeBottle, ID: "b1"})
	if err != nil || len(got) != 2 {
		t.Fatalf("ScopeSources: %+v (%v)", got, err)
	}
	if !strings.Contains(got[0].Origin, "bot-bottle.budget") || got[1].Origin != "settings.yml (bottles: dev: budget:)" {
		t.Errorf("origins %q and %q, want the label's and the settings' keys", got[0].Origin, got[1].Origin)
	}
	if got[0].Source.Removable() || got[1].Source.Removable() {
		t.Error("a label's or the settings' limit is removable; want it changed at its source")
	}
	if _, err := b.ScopeSources(budget.Scope{Kind: budget.ScopeBottle, ID: "nope"}); err == nil {
		t.Error("an unknown bottle's sources: no error")
	}
}
