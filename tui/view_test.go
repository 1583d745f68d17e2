package tui

import (
	"fmt"
	"testing"

	"github.com/charmbracelet/x/exp/golden"
)

// sizes are the terminal sizes every golden view is rendered at: the
// smallest supported and a common large one.
var sizes = []struct{ w, h int }{{80, 24}, {120, 40}}

// TestViews renders each screen at each size, ANSI stripped, against
// testdata/TestViews/<screen>_<w>x<h>.golden (go test ./tui -update
// regenerates them).
func TestViews(t *testing.T) {
	screens := []struct {
		name     string
		readOnly bool
		setup    func(h *harness)
	}{
		{"table", false, func(h *harness) {}},
		{"table_readonly", true, func(h *harness) {}},
		{"detail", false, func(h *harness) { h.press("down", "enter") }},
		{"audit", false, func(h *harness) { h.press("a") }},
		{"help", false, func(h *harness) { h.press("?") }},
		{"help_readonly", true, func(h *harness) { h.press("?") }},
		{"confirm_cutoff", false, func(h *harness) { h.press("down", "c") }},
		{"confirm_kill_detail", false, func(h *harness) { h.press("enter", "x") }},
		{"filter", false, func(h *harness) { h.press("/", "t", "e", "s") }},
		{"sort_name", false, func(h *harness) { h.press("s", "s") }},
		{"daemon_down", false, func(h *harness) { h.daemon.SetUp(false); h.load() }},
		{"held", false, func(h *harness) { h.daemon.SetHeld(map[string]int64{"claude": 12_500}); h.load() }},
		{"empty", false, func(h *harness) { h.src.in = Input{Now: FixtureNow}; h.load() }},
	}
	for _, sc := range screens {
		for _, sz := range sizes {
			t.Run(fmt.Sprintf("%s_%dx%d", sc.name, sz.w, sz.h), func(t *testing.T) {
				h := newHarness(t, sc.readOnly)
				h.screen(sz.w, sz.h)
				sc.setup(h)
				golden.RequireEqual(t, h.screen(sz.w, sz.h))
			})
		}
	}
}
