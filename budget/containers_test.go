package budget_test

import (
	"testing"

	"github.com/bot-bottle/bottlecap/budget"
)

func TestBottleOfContainer(t *testing.T) {
	const full = "3f4e5d6c7b8a9f0e1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a7f8e9d0c1b2a3f4e"
	b := budget.NewBook(nil)
	for _, bt := range []budget.Bottle{
		{Slug: "short", Containers: []string{full[:12]}},
		{Slug: "moved", Containers: []string{"aaaaaaaaaaaa0000"}},
		{Slug: "gone", Containers: []string{"bbbbbbbbbbbb"}},
		{Slug: "named", Containers: []string{"sidecar"}},
		{Slug: "long", Containers: []string{"eeeeeeeeeeee1111"}},
	} {
		if err := b.Register(bt); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Register(budget.Bottle{Slug: "moved", Containers: []string{"cccccccccccc"}}); err != nil {
		t.Fatal(err)
	}
	b.Forget("gone")
	tests := []struct {
		name, id, want string
		ok             bool
	}{
		{"full id under a registered short id", full, "short", true},
		{"the short id itself", full[:12], "short", true},
		{"a registered full id", "eeeeeeeeeeee1111", "long", true},
		{"same first 12 as a full id but another container", "eeeeeeeeeeee2222", "", false},
		{"a container re-registered away", "aaaaaaaaaaaa0000", "", false},
		{"its new container", "cccccccccccc9999", "moved", true},
		{"a forgotten bottle's container", "bbbbbbbbbbbb", "", false},
		{"an id shorter than 12", "sidecar", "", false},
		{"unknown", "dddddddddddd", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := b.BottleOfContainer(tt.id)
			if got != tt.want || ok != tt.ok {
				t.Errorf("got %q %v, want %q %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}
