package budget_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sort"
	"testing"

	"github.com/bot-bottle/bottlecap/budget"
)

// model is the forest kept the slow, obvious way: each bottle's parent and
// own usage, subtree sums recomputed from scratch on demand.
type model struct {
	parent     map[string]string
	registered map[string]bool
	own        map[string]int64
}

// sums walks up from every bottle with usage, adding it to each registered
// ancestor (and itself, when registered).
func (m *model) sums() map[string]int64 {
	out := map[string]int64{}
	for s, n := range m.own {
		for a := s; a != "" && m.registered[a]; a = m.parent[a] {
			out[a] += n
		}
	}
	return out
}

func (m *model) wouldCycle(slug, parent string) bool {
	for a := parent; a != ""; a = m.parent[a] {
		if a == slug {
			return true
		}
		if !m.registered[a] {
			return false
		}
	}
	return false
}

// TestSubtreeSumsFollowRegistrationsOfDeepTrees registers, re-parents and
// forgets thousands of bottles in deep chains and wide fans, in random
// order (children often before their parents), and checks every subtree sum
// against a recomputation from scratch.
func TestSubtreeSumsFollowRegistrationsOfDeepTrees(t *testing.T) {
	const n = 3000
	rng := rand.New(rand.NewPCG(7, 11))
	b := budget.NewBook(nil)
	m := &model{parent: map[string]string{}, registered: map[string]bool{}, own: map[string]int64{}}
	slug := func(i int) string { return fmt.Sprintf("b%04d", i) }
	// Mostly chains (parent = previous bottle), some fans under b0000.
	parentOf := func(i int) string {
		switch {
		case i == 0:
			return ""
		case i%50 == 0:
			return slug(0)
		default:
			return slug(i - 1)
		}
	}
	order := rng.Perm(n)
	for step, i := range order {
		s := slug(i)
		if tokens := int64(rng.IntN(5)); tokens > 0 {
			b.Add(s, "a", "claude", tokens)
			m.own[s] += tokens
		}
		parent := parentOf(i)
		if m.wouldCycle(s, parent) { // an earlier re-parenting put its parent below it
			if err := b.Register(budget.Bottle{Slug: s, Parent: parent}); !errors.Is(err, budget.ErrConflict) {
				t.Fatalf("register %s under %s: got %v, want ErrConflict", s, parent, err)
			}
			parent = ""
		}
		if err := b.Register(budget.Bottle{Slug: s, Parent: parent}); err != nil {
			t.Fatal(err)
		}
		m.parent[s], m.registered[s] = parent, true
		b.Add(s, "a", "claude", 3)
		m.own[s] += 3
		if step%97 == 0 { // re-parent a random bottle where no cycle results
			c, p := slug(rng.IntN(n)), slug(rng.IntN(n))
			if m.registered[c] && !m.wouldCycle(c, p) {
				if err := b.Register(budget.Bottle{Slug: c, Parent: p}); err != nil {
					t.Fatalf("re-parent %s under %s: %v", c, p, err)
				}
				m.parent[c] = p
			}
		}
		if step%211 == 0 { // forget one, and bring another back
			f := slug(rng.IntN(n))
			b.Forget(f)
			m.registered[f] = false
		}
	}
	want := m.sums()
	for i := range n {
		s := slug(i)
		if _, got, _ := b.Used(s, "", "claude"); got != want[s] {
			t.Fatalf("%s: got subtree %d, want %d", s, got, want[s])
		}
	}
}

// TestRegistrationWorkFollowsTheLineage counts the subtree sums touched:
// registering the 10,000th bottle of a flat forest, or a leaf under a
// chain of 20, changes as many sums as its lineage is long, whatever the
// number of bottles already registered.
func TestRegistrationWorkFollowsTheLineage(t *testing.T) {
	b := budget.NewBook(nil)
	for i := range 10_000 {
		s := fmt.Sprintf("flat-%05d", i)
		b.Add(s, "a", "claude", 1)
		b.Add(s, "a", "codex", 1)
		if err := b.Register(budget.Bottle{Slug: s, Implicit: true}); err != nil {
			t.Fatal(err)
		}
	}
	if got := b.SumMoves(); got != 0 {
		t.Errorf("registering 10,000 parentless bottles moved %d sums, want 0", got)
	}
	for i := range 20 {
		p := ""
		if i > 0 {
			p = fmt.Sprintf("chain-%02d", i-1)
		}
		if err := b.Register(budget.Bottle{Slug: fmt.Sprintf("chain-%02d", i), Parent: p}); err != nil {
			t.Fatal(err)
		}
	}
	before := b.SumMoves()
	b.Add("leaf", "a", "claude", 5)
	b.Add("leaf", "a", "codex", 5)
	if err := b.Register(budget.Bottle{Slug: "leaf", Parent: "chain-19"}); err != nil {
		t.Fatal(err)
	}
	if got := b.SumMoves() - before; got != 20*2 {
		t.Errorf("a leaf with 2 providers under 20 ancestors moved %d sums, want 40", got)
	}
	before = b.SumMoves()
	if err := b.Register(budget.Bottle{Slug: "leaf", Parent: "chain-09"}); err != nil {
		t.Fatal(err)
	}
	if got := b.SumMoves() - before; got != (20+10)*2 {
		t.Errorf("re-parenting it from depth 20 to depth 10 moved %d sums, want 60", got)
	}
	if _, sub, _ := b.Used("chain-00", "", "codex"); sub != 5 {
		t.Errorf("got chain-00's codex subtree %d, want 5", sub)
	}
	if _, sub, _ := b.Used("chain-15", "", "codex"); sub != 0 {
		t.Errorf("got chain-15's codex subtree %d after the move, want 0", sub)
	}
}

func TestTreesSubtreeAndUsageUnder(t *testing.T) {
	// forest plus "orphan", which names the unregistered "ghost" as parent.
	bottles := append(forest(), budget.Bottle{Slug: "orphan", Parent: "ghost"})
	tests := []struct {
		name       string
		usage      []use
		slugs      []string
		wantTrees  []string
		wantUnder  string
		wantHasUse bool
	}{
		{"a leaf's tree is its root's subtree", nil, []string{"leaf"},
			[]string{"leaf", "mid", "root"}, "leaf", false},
		{"two trees at once", nil, []string{"mid", "loner"},
			[]string{"leaf", "loner", "mid", "root"}, "mid", false},
		{"an unregistered parent reaches the children naming it", nil, []string{"ghost"},
			[]string{"orphan"}, "ghost", false},
		{"usage below a bottle counts", []use{{"leaf", "impl", "claude", 1}}, []string{"loner"},
			[]string{"loner"}, "mid", true},
		{"usage beside it does not", []use{{"loner", "impl", "claude", 1}}, []string{"loner"},
			[]string{"loner"}, "mid", false},
		{"an unregistered bottle's own usage counts", []use{{"ghost", "", "claude", 1}}, []string{"nobody"},
			nil, "ghost", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := world(t, nil, bottles, tt.usage...)
			if got := b.Trees(tt.slugs...); !reflect.DeepEqual(got, tt.wantTrees) {
				t.Errorf("Trees(%v): got %v, want %v", tt.slugs, got, tt.wantTrees)
			}
			if got := b.HasUsageUnder(tt.wantUnder); got != tt.wantHasUse {
				t.Errorf("HasUsageUnder(%s): got %v, want %v", tt.wantUnder, got, tt.wantHasUse)
			}
		})
	}
	b := world(t, nil, bottles)
	got := b.Subtree("root")
	sort.Strings(got[1:])
	if want := []string{"root", "leaf", "mid"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Subtree(root): got %v, want %v (the bottle first)", got, want)
	}
}
