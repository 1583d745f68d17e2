package controller_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/controller"
)

// The budget lifecycle on the core over the fake ledger: limits from
// settings, registration, labels and runtime, each kept apart; removing
// one puts what it overrode back in force, and that change acts or
// restores like any other.

// devSettings give bottles named dev a claude limit.
func devSettings(n int64) *budget.Settings {
	s := budget.DefaultSettings()
	s.Bottles["dev"] = budget.Defaults{Budget: claude(n)}
	return s
}

// newRigWith is newRig under settings s.
func newRigWith(t *testing.T, f *fakeLedger, s *budget.Settings) *rig {
	t.Helper()
	enf := &heldEnforcer{}
	c, err := controller.NewCore(context.Background(), controller.Config{Ledger: f, Ingester: &fakeIngester{f: f}, Enforcer: enf, Settings: s})
	if err != nil {
		t.Fatalf("NewCore: %v", err)
	}
	return &rig{t: t, f: f, enf: enf, core: c}
}

func (r *rig) setLimits(scope, id string, l budget.Limits) {
	r.t.Helper()
	if _, err := r.core.SetLimits(context.Background(), scope, id, l); err != nil {
		r.t.Fatalf("set %s/%s: %v", scope, id, err)
	}
}

// limitOf is the limit governing b1's agent a on claude.
func (r *rig) limitOf(slug string) int64 { return r.core.Verdict(slug, "a", "claude", 0).Limit }

// TestCoreRemovingARuntimeLimitActsOnWhatComesBack: with the runtime limit
// removed, the settings' limit for the bottle's name is in force again; if
// it is exhausted the bottle is cut off, and if it has room a bottle the
// runtime limit cut off is restored.
func TestCoreRemovingARuntimeLimitActsOnWhatComesBack(t *testing.T) {
	t.Run("exhausted settings limit acts", func(t *testing.T) {
		r := newRigWith(t, newFakeLedger(), devSettings(100))
		r.register("b1", api.BottleRequest{Name: "dev", Agent: "a"})
		r.setLimits("bottle", "b1", claude(1000))
		r.ingest("r1", "b1", 150)
		r.wantState("b1", budget.Active)
		b, err := r.core.RemoveLimits(context.Background(), "bottle", "b1", []string{"claude"})
		if err != nil {
			t.Fatal(err)
		}
		if len(b.Removed) != 1 || b.Removed[0].Source != "runtime" || b.Limits["claude"].String() != "100" {
			t.Errorf("reply %+v, want the runtime limit removed and the settings' 100 in force", b)
		}
		if got := r.limitOf("b1"); got != 100 {
			t.Errorf("limit %d, want the settings' 100", got)
		}
		r.wantState("b1", budget.Pending)
		r.wantJournal("cutoff b1 pending")
	})
	t.Run("settings limit with room restores", func(t *testing.T) {
		r := newRigWith(t, newFakeLedger(), devSettings(1000))
		r.register("b1", api.BottleRequest{Name: "dev", Agent: "a"})
		r.setLimits("bottle", "b1", claude(100))
		r.ingest("r1", "b1", 150)
		r.enf.job(t, 0).Finished(1, nil)
		r.wantState("b1", budget.CutOff)
		if _, err := r.core.RemoveLimits(context.Background(), "bottle", "b1", nil); err != nil {
			t.Fatal(err)
		}
		if got := r.limitOf("b1"); got != 1000 {
			t.Errorf("limit %d, want the settings' 1000", got)
		}
		r.wantJournal("cutoff b1 done", "restore b1 pending")
		r.enf.job(t, 1).Finished(1, nil)
		r.wantState("b1", budget.Active)
	})
	t.Run("a registration's limit goes when nothing overrides it", func(t *testing.T) {
		r := newRigWith(t, newFakeLedger(), nil)
		r.register("b1", api.BottleRequest{Agent: "a", Budget: claude(100)})
		r.ingest("r1", "b1", 150)
		r.enf.job(t, 0).Finished(1, nil)
		if _, err := r.core.RemoveLimits(context.Background(), "bottle", "b1", []string{"claude"}); err != nil {
			t.Fatal(err)
		}
		if v := r.core.Verdict("b1", "a", "claude", 0); !v.Unlimited {
			t.Errorf("verdict %+v, want no limit left", v)
		}
		bottles, _, _ := r.f.snapshot()
		if got := bottles["b1"].Budget; len(got) != 0 {
			t.Errorf("ledger keeps the registration's budget %v", got)
		}
		r.wantJournal("cutoff b1 done", "restore b1 pending")
	})
}

// TestCoreRuntimeBeatsRegistrationAndLabels: a registration or labels
// that come after a runtime limit do not replace it (they did, merged
// over it, before limits had sources); each replaces what the other set.
func TestCoreRuntimeBeatsRegistrationAndLabels(t *testing.T) {
	r := newRigWith(t, newFakeLedger(), devSettings(5000))
	r.register("b1", api.BottleRequest{Name: "dev", Agent: "a", Budget: claude(2000)})
	r.setLimits("bottle", "b1", claude(100))
	r.register("b1", api.BottleRequest{Budget: claude(3000)})
	if err := r.core.Discover(context.Background(), controller.Container{ID: "c1", Bottle: "b1", Budget: claude(4000)}); err != nil {
		t.Fatal(err)
	}
	if got := r.limitOf("b1"); got != 100 {
		t.Errorf("limit %d, want the runtime 100 over registration and labels", got)
	}
	b, err := r.core.Budget("bottle", "b1")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range b.Sources {
		got = append(got, l.Source+":"+budget.Lifetime(l.Limit).String()+":"+map[bool]string{true: "overridden", false: "in force"}[l.Overridden])
	}
	want := []string{"runtime:100:in force", "label:4000:overridden", "settings:5000:overridden"}
	if !slices.Equal(got, want) {
		t.Errorf("sources %q, want %q (the labels replaced the registration's)", got, want)
	}
	r.register("b1", api.BottleRequest{Budget: claude(3000)})
	if b, _ := r.core.Budget("bottle", "b1"); len(b.Sources) != 3 || b.Sources[1].Source != "registration" {
		t.Errorf("after a re-registration %+v, want the registration's in place of the labels'", b.Sources)
	}
}

// TestCoreRemoveRefusesWhatIsChangedAtItsSource: settings and label
// limits are refused by name (409), a provider with no limit and an
// unknown bottle are not found (404), a bad provider name is invalid
// (400); none of them changes anything, even beside a provider that
// could go.
func TestCoreRemoveRefusesWhatIsChangedAtItsSource(t *testing.T) {
	s := devSettings(100)
	s.Budget = budget.Limits{"gemini": budget.Lifetime(9)}
	r := newRigWith(t, newFakeLedger(), s)
	r.register("b1", api.BottleRequest{Name: "dev", Agent: "a"})
	if err := r.core.Discover(context.Background(), controller.Container{ID: "c1", Bottle: "b1", Budget: budget.Limits{"pi": budget.Lifetime(7)}}); err != nil {
		t.Fatal(err)
	}
	r.setLimits("bottle", "b1", budget.Limits{"codex": budget.Lifetime(50)})
	tests := []struct {
		scope, id string
		providers []string
		class     error
		msg       string
	}{
		{"bottle", "b1", []string{"claude"}, budget.ErrConflict,
			"claude at bottle/b1 comes from settings.yml (bottles: dev: budget:); change it there, or override it at runtime (bottlecap budget set bottle/b1 claude=N)"},
		{"bottle", "b1", []string{"codex", "pi"}, budget.ErrConflict, "pi at bottle/b1 comes from the label bot-bottle.budget on its containers"},
		{"global", "-", nil, budget.ErrConflict, "gemini at global comes from settings.yml (budget:)"},
		{"bottle", "b1", []string{"codex", "gemini"}, budget.ErrNotFound, "no gemini limit at bottle/b1"},
		{"agent", "b1/a", nil, budget.ErrNotFound, "no limit at agent/b1/a"},
		{"bottle", "nope", nil, budget.ErrNotFound, `bottle "nope"`},
		{"bottle", "b1", []string{"no/such"}, budget.ErrInvalid, "provider"},
		{"parent", "b1", nil, budget.ErrInvalid, "scope"},
	}
	for _, tt := range tests {
		_, err := r.core.RemoveLimits(context.Background(), tt.scope, tt.id, tt.providers)
		if !errors.Is(err, tt.class) || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("remove %s/%s %v: got %v, want %v naming %q", tt.scope, tt.id, tt.providers, err, tt.class, tt.msg)
		}
	}
	if got := r.core.Verdict("b1", "a", "codex", 0).Limit; got != 50 {
		t.Errorf("codex limit %d after refused removals, want the runtime 50 still", got)
	}
	if _, _, audit := r.f.snapshot(); slices.ContainsFunc(audit, func(e budget.AuditEntry) bool { return strings.Contains(e.Detail, "removed") }) {
		t.Errorf("audit %+v records a removal, want none", audit)
	}
}

// TestCoreRemoveWhenTheLedgerRefuses: a removal the ledger refuses leaves
// the limit in force in memory too.
func TestCoreRemoveWhenTheLedgerRefuses(t *testing.T) {
	f := newFakeLedger()
	r := newRigWith(t, f, devSettings(1000))
	r.register("b1", api.BottleRequest{Name: "dev", Agent: "a", Budget: claude(300)})
	r.setLimits("bottle", "b1", claude(100))
	refused := errors.New("disk full")
	refuse := func(method string) {
		f.fail = func(m string) error {
			if m == method {
				return refused
			}
			return nil
		}
	}
	refuse("DeleteBudget")
	if _, err := r.core.RemoveLimits(context.Background(), "bottle", "b1", nil); !errors.Is(err, refused) {
		t.Errorf("removing the runtime limit: got %v, want %v", err, refused)
	}
	if got := r.limitOf("b1"); got != 100 {
		t.Errorf("limit %d in force, want the runtime 100 still", got)
	}
	f.fail = nil
	if _, err := r.core.RemoveLimits(context.Background(), "bottle", "b1", nil); err != nil {
		t.Fatal(err)
	}
	refuse("PutBottle")
	if _, err := r.core.RemoveLimits(context.Background(), "bottle", "b1", nil); !errors.Is(err, refused) {
		t.Errorf("removing the registration's limit: got %v, want %v", err, refused)
	}
	f.fail = nil
	if got := r.limitOf("b1"); got != 300 {
		t.Errorf("limit %d in force, want the registration's 300 still", got)
	}
}

// TestCoreReloadSaysWhatChanged: a reload that changes a settings limit a
// runtime limit overrides says nothing in force changed, and why; one
// that changes a limit in force names it.
func TestCoreReloadSaysWhatChanged(t *testing.T) {
	r := newRigWith(t, newFakeLedger(), devSettings(5000))
	r.register("b1", api.BottleRequest{Name: "dev", Agent: "a"})
	r.setLimits("bottle", "b1", claude(100))

	reload, err := r.core.SetSettings(devSettings(3000))
	if err != nil {
		t.Fatal(err)
	}
	if want := "no limit in force changed (bottle/b1 claude is set at runtime, which overrides settings)"; reload.String() != want {
		t.Errorf("reload: %q, want %q", reload, want)
	}
	if reload, _ := r.core.SetSettings(devSettings(3000)); reload.String() != "no limit in force changed" {
		t.Errorf("reload of the same settings: %q", reload)
	}
	s := devSettings(3000)
	s.Budget = budget.Limits{"claude": budget.LimitSet{{Tokens: 7000, Window: budget.DayWindow}}}
	reload, err = r.core.SetSettings(s)
	if err != nil {
		t.Fatal(err)
	}
	if want := "1 limit in force changed: global claude none → 7000/day (settings)"; reload.String() != want {
		t.Errorf("reload: %q, want %q", reload, want)
	}
	if _, err := r.core.RemoveLimits(context.Background(), "bottle", "b1", nil); err != nil {
		t.Fatal(err)
	}
	reload, err = r.core.SetSettings(devSettings(2000))
	if err != nil {
		t.Fatal(err)
	}
	if want := "2 limits in force changed: global claude 7000/day (settings) → none, bottle/b1 claude 3000 → 2000 (settings)"; reload.String() != want {
		t.Errorf("reload: %q, want %q", reload, want)
	}
	if _, _, audit := r.f.snapshot(); !strings.HasSuffix(audit[len(audit)-1].Detail, "bottle/b1 claude 3000 → 2000 (settings)") {
		t.Errorf("audit %q, want the reload's line", audit[len(audit)-1].Detail)
	}
}
