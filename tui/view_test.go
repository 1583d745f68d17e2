package tui

import (
	"fmt"
	"testing"

	"github.com/bot-bottle/bottlecap/budget"

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
		{"confirm_pause", false, func(h *harness) { h.press("p") }},
		{"paused", false, func(h *harness) { h.src.in = withPaused(h.src.in); h.load(); h.press("G", "up", "up", "enter") }},
		{"confirm_kill_detail", false, func(h *harness) { h.press("enter", "x") }},
		{"filter", false, func(h *harness) { h.press("/", "t", "e", "s") }},
		{"sort_name", false, func(h *harness) { h.press("s", "s") }},
		{"daemon_down", false, func(h *harness) { h.daemon.SetUp(false); h.load() }},
		{"held", false, func(h *harness) { h.daemon.SetHeld(map[string]int64{"claude": 12_500}); h.load() }},
		{"empty", false, func(h *harness) { h.src.in = Input{Now: FixtureNow}; h.load() }},
		{"windowed", false, func(h *harness) { h.src.in = WindowedFixture(); h.load() }},
		{"windowed_detail", false, func(h *harness) { h.src.in = WindowedFixture(); h.load(); h.press("down", "down", "enter") }},
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

// withPaused is in with a bottle the rate guard paused.
func withPaused(in Input) Input {
	reason := "rate guard: 412,000 claude tokens in the last minute, over 300k/min"
	in.Bottles = append(in.Bottles, budget.Bottle{Slug: "looper-h8", Agent: "coder", State: budget.Paused, ByRateGuard: true, StateReason: reason})
	in.Totals = append(in.Totals, budget.Total{Bottle: "looper-h8", Agent: "coder", Provider: "claude", Counted: 412_000, Reports: 400})
	in.Actions = append(in.Actions, budget.Action{ID: 4, Bottle: "looper-h8", Kind: budget.ActPause, Reason: reason, Status: budget.StatusDone})
	return in
}
