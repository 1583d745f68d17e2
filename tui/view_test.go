package tui

import (
	"fmt"
	"testing"

	"github.com/bot-bottle/bottlecap/budget"

	"github.com/charmbracelet/x/exp/golden"
)

type size struct{ w, h int }

// sizes are the terminal sizes every golden view is rendered at: the
// smallest supported and a common large one.
var sizes = []size{{80, 24}, {120, 40}}

// tableSizes are the widths the main view is rendered at, from the
// smallest supported to a wide one, where the column layout changes most.
var tableSizes = []size{{80, 24}, {100, 30}, {120, 40}, {140, 40}, {160, 50}}

// fleetSizes are the widths the fleet pane is rendered at: the smallest
// supported, a common large one and the widest it lays itself out in.
var fleetSizes = []size{{80, 24}, {120, 40}, {160, 50}}

// TestViews renders each screen at each size, ANSI stripped, against
// testdata/TestViews/<screen>_<w>x<h>.golden (go test ./tui -update
// regenerates them).
func TestViews(t *testing.T) {
	screens := []struct {
		name     string
		readOnly bool
		setup    func(h *harness)
		sizes    []size // nil: sizes
	}{
		{"table", false, func(h *harness) {}, tableSizes},
		{"fleet", false, func(h *harness) { h.src.in = FleetFixture(); h.load() }, tableSizes},
		{"fleet_hidden", false, func(h *harness) { h.src.in = FleetFixture(); h.load(); h.press("h") }, nil},
		{"fleet_detail", false, func(h *harness) { h.src.in = FleetFixture(); h.load(); h.press("j", "enter") }, nil},
		{"fleet_audit", false, func(h *harness) { h.src.in = FleetFixture(); h.load(); h.press("a") }, nil},
		{"stopped_auto_hidden", false, func(h *harness) { h.src.in = StoppedFleet(40); h.load() }, nil},
		{"confirm_yes_focused", false, func(h *harness) { h.press("down", "c", "tab") }, nil},
		{"table_readonly", true, func(h *harness) {}, nil},
		{"detail", false, func(h *harness) { h.press("down", "enter") }, nil},
		{"audit", false, func(h *harness) { h.press("a") }, nil},
		{"help", false, func(h *harness) { h.press("?") }, nil},
		{"help_readonly", true, func(h *harness) { h.press("?") }, nil},
		{"confirm_cutoff", false, func(h *harness) { h.press("down", "c") }, nil},
		{"confirm_pause", false, func(h *harness) { h.press("p") }, nil},
		{"paused", false, func(h *harness) { h.src.in = withPaused(h.src.in); h.load(); h.press("G", "up", "up", "enter") }, nil},
		{"confirm_kill_detail", false, func(h *harness) { h.press("enter", "x") }, nil},
		{"filter", false, func(h *harness) { h.press("/", "t", "e", "s") }, nil},
		{"sort_name", false, func(h *harness) { h.press("s", "s") }, nil},
		{"daemon_down", false, func(h *harness) { h.daemon.SetUp(false); h.load() }, nil},
		{"held", false, func(h *harness) { h.daemon.SetHeld(map[string]int64{"claude": 12_500}); h.load() }, nil},
		{"empty", false, func(h *harness) { h.src.in = Input{Now: FixtureNow}; h.load() }, nil},
		{"fleet_hosts", false, func(h *harness) { h.daemon.SetFleet(FleetStatusFixture()); h.load(); h.press("F") }, fleetSizes},
		{"fleet_hosts_cut_off", false, func(h *harness) { h.daemon.SetFleet(cutOff(false)); h.load(); h.press("F") }, nil},
		{"fleet_hosts_help", false, func(h *harness) { h.daemon.SetFleet(FleetStatusFixture()); h.load(); h.press("F", "?") }, nil},
		{"windowed", false, func(h *harness) { h.src.in = WindowedFixture(); h.load() }, nil},
		{"windowed_detail", false, func(h *harness) { h.src.in = WindowedFixture(); h.load(); h.press("down", "down", "enter") }, nil},
	}
	for _, sc := range screens {
		szs := sc.sizes
		if szs == nil {
			szs = sizes
		}
		for _, sz := range szs {
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
