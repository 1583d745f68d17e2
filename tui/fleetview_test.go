package tui

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
)

// FleetStatusFixture is a fleet of four hosts as the daemon on build-box
// reports it: one with a lease that expired, one never seen, two whose
// names only fit whole on a wide terminal; a claude budget nearly spent
// and a codex one Postgres has not told this host about yet.
func FleetStatusFixture() *api.FleetStatus {
	at := FixtureNow
	return &api.FleetStatus{
		Host: "build-box", Reachable: true, ReadAt: at.Add(-2 * time.Second),
		Hosts: []api.FleetHost{
			{Host: "alice-laptop.local", Used: map[string]int64{}, Lease: map[string]int64{}},
			{Host: "build-box", Used: map[string]int64{"claude": 8_400_000, "codex": 1_200_000}, Lease: map[string]int64{"claude": 1_000_000},
				LagMS: 40, LastSeen: at.Add(-2 * time.Second)},
			{Host: "ci-runner-eu-west-1-pool-a-0017.ci.example.internal", Used: map[string]int64{"claude": 6_000_000},
				Lease: map[string]int64{"claude": 2_500_000}, Expired: []string{"claude"}, LagMS: 1250, LastSeen: at.Add(-3*time.Minute - 4*time.Second)},
			{Host: "ci-runner-eu-west-1-pool-a-0018.ci.example.internal", Used: map[string]int64{"claude": 5_200_000},
				Lease: map[string]int64{"claude": 500_000}, LastSeen: at.Add(-time.Second)},
		},
		Budgets: []budget.FleetState{
			{Provider: "claude", Known: true, Limit: 20_000_000, Window: "month", Used: 19_600_000, Held: 12_000,
				Ceiling: 9_400_000, LeaseLive: true, LeaseRoom: 46_000, Remaining: 46_000},
			{Provider: "codex", Limit: 5_000_000, Window: "life"},
		},
	}
}

// cutOff is the fixture with Postgres unreachable.
func cutOff(failOpen bool) *api.FleetStatus {
	fl := FleetStatusFixture()
	fl.Reachable, fl.FailOpen = false, failOpen
	fl.Error = "dial tcp 10.0.0.5:5432: connect: connection refused"
	return fl
}

func TestFleetKey(t *testing.T) {
	tests := []struct {
		keys []string
		want Page
	}{
		{[]string{"F"}, PageFleet},
		{[]string{"F", "esc"}, PageTable},
		{[]string{"F", "F"}, PageTable},
		{[]string{"enter", "F"}, PageFleet},
		{[]string{"F", "?"}, PageHelp},
		{[]string{"F", "?", "esc"}, PageFleet},
		{[]string{"a", "F"}, PageAudit}, // the audit pane takes only its keys
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.keys, ","), func(t *testing.T) {
			h := newHarness(t, false)
			h.daemon.SetFleet(FleetStatusFixture())
			h.load()
			h.press(tt.keys...)
			if h.m.page != tt.want {
				t.Errorf("page = %d, want %d", h.m.page, tt.want)
			}
		})
	}
}

// TestFleetKeyWithoutAFleet: without a fleet F is absent from the help
// and, pressed, says why there is nothing to show.
func TestFleetKeyWithoutAFleet(t *testing.T) {
	tests := []struct {
		name  string
		setup func(d *FakeDaemon)
		want  string
	}{
		{"host alone", func(d *FakeDaemon) {}, "this daemon is not a fleet member"},
		{"daemon down", func(d *FakeDaemon) { d.SetFleet(FleetStatusFixture()); d.SetUp(false) }, "daemon unreachable: the fleet is unknown"},
		{"status refused", func(d *FakeDaemon) { d.SetFleet(FleetStatusFixture()); d.RefuseStatus() }, "only to operators"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, false)
			tt.setup(h.daemon)
			h.load()
			if strings.Contains(h.screen(120, 40), "F fleet") {
				t.Error("the table's key help offers F without a fleet")
			}
			h.press("F")
			if h.m.page != PageTable {
				t.Errorf("page = %d, want the table", h.m.page)
			}
			if got := h.m.status.Message(); !strings.Contains(got, tt.want) {
				t.Errorf("status = %q, want it to hold %q", got, tt.want)
			}
			h.press("?")
			if help := h.screen(120, 40); strings.Contains(help, "F     fleet") || strings.Contains(help, "F lists") {
				t.Errorf("help mentions the fleet without one:\n%s", help)
			}
		})
	}
}

func TestFleetKeyInHelp(t *testing.T) {
	h := newHarness(t, false)
	h.daemon.SetFleet(FleetStatusFixture())
	h.load()
	if !strings.Contains(h.screen(160, 40), "F fleet") {
		t.Error("the table's key help does not offer F with a fleet")
	}
	h.press("?")
	help := h.screen(120, 40)
	for _, want := range []string{"F     fleet", "F lists the fleet's hosts"} {
		if !strings.Contains(help, want) {
			t.Errorf("help lacks %q:\n%s", want, help)
		}
	}
}

// TestFleetPaneFollowsTheDaemon: the open pane shows each refresh, and
// says so when the daemon stops answering rather than showing stale hosts.
func TestFleetPaneFollowsTheDaemon(t *testing.T) {
	h := newHarness(t, false)
	h.daemon.SetFleet(FleetStatusFixture())
	h.load()
	h.press("F")
	if s := h.screen(120, 40); !strings.Contains(s, "Postgres reachable") {
		t.Fatalf("fleet pane:\n%s", s)
	}
	h.daemon.SetFleet(cutOff(true))
	h.load()
	s := h.screen(120, 40)
	for _, want := range []string{"Postgres unreachable: dial tcp 10.0.0.5:5432: connect: connection refused", "fail_open: true"} {
		if !strings.Contains(s, want) {
			t.Errorf("after Postgres went away the pane lacks %q:\n%s", want, s)
		}
	}
	h.daemon.SetUp(false)
	h.load()
	if s := h.screen(120, 40); !strings.Contains(s, "daemon unreachable: the fleet is unknown") || strings.Contains(s, "build-box") {
		t.Errorf("with the daemon down the pane shows:\n%s", s)
	}
	h.press("F")
	if h.m.page != PageTable {
		t.Errorf("F left the page at %d, want the table", h.m.page)
	}
}

// TestFleetPaneFitsEveryWidth: from the smallest supported width up,
// every line fits, every host's line is
// there with this host's marked, and each long name keeps both its start
// and the number that tells it from its neighbour.
func TestFleetPaneFitsEveryWidth(t *testing.T) {
	for w := 80; w <= 200; w += 6 {
		t.Run(fmt.Sprint(w), func(t *testing.T) {
			h := newHarness(t, false)
			h.daemon.SetFleet(FleetStatusFixture())
			h.load()
			h.press("F")
			s := h.screen(w, 40)
			for i, l := range strings.Split(s, "\n") {
				if lipWidth(l) > w {
					t.Errorf("line %d is %d cells wide, over %d: %q", i, lipWidth(l), w, l)
				}
			}
			for _, want := range []string{"* build-box", "alice-laptop", "ci-run", "0017", "0018", "2.5M expired", "HOST MAY SPEND"} {
				if !strings.Contains(s, want) {
					t.Errorf("the pane lacks %q:\n%s", want, s)
				}
			}
		})
	}
}

func TestCutHost(t *testing.T) {
	tests := []struct {
		host  string
		width int
		want  string
	}{
		{"build-box", 20, "build-box"},
		{"runner-0017.ci.example.internal", 31, "runner-0017.ci.example.internal"},
		{"runner-0017.ci.example.internal", 24, "runner-0017…ple.internal"},
		{"ci-runner-eu-west-1-pool-a-0017.ci.example.internal", 24, "ci-runne…-1-pool-a-0017…"},
		{"implementer-b4d07-9c1e2", 12, "impl…7-9c1e2"},
		{"a.b", 2, "a…"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s@%d", tt.host, tt.width), func(t *testing.T) {
			got := cutHost(tt.host, tt.width)
			if got != tt.want {
				t.Errorf("cutHost = %q, want %q", got, tt.want)
			}
			if lipWidth(got) > tt.width {
				t.Errorf("cutHost = %q, %d cells, over %d", got, lipWidth(got), tt.width)
			}
		})
	}
}

// TestFleetPaneColours: what needs the operator's eye is coloured on top
// of its words: Postgres unreachable in red, an expired lease in yellow,
// this host's line in the title's cyan.
func TestFleetPaneColours(t *testing.T) {
	h := newHarness(t, false)
	h.daemon.SetFleet(cutOff(false))
	h.load()
	h.press("F")
	h.screen(120, 40)
	found := map[string]bool{}
	for _, l := range strings.Split(h.m.View().Content, "\n") {
		for text, colour := range map[string]string{"Postgres unreachable": "31", "2.5M expired": "33", "build-box ": "36"} {
			if contains(sgrBefore(l, text), colour) {
				found[text] = true
			}
		}
	}
	for _, text := range []string{"Postgres unreachable", "2.5M expired", "build-box "} {
		if !found[text] {
			t.Errorf("%q is not drawn in its colour", text)
		}
	}
}
