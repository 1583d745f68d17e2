package tui

import (
	"errors"
	"strings"
	"testing"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
)

// These tests call Update directly (package tui, to reach the typed
// messages) and assert state, as bubbles' own tests do.

func selected(t *testing.T, h *harness) string {
	t.Helper()
	r, ok := h.m.table.Selected()
	if !ok {
		t.Fatal("no row selected")
	}
	return r.Slug
}

func TestNavigationKeys(t *testing.T) {
	tests := []struct {
		keys []string
		want string
	}{
		{nil, "orchestrator-a1"},
		{[]string{"down"}, "reviewer-d4"},
		{[]string{"j", "j"}, "implementer-b2"},
		{[]string{"j", "j", "k"}, "reviewer-d4"},
		{[]string{"up"}, "orchestrator-a1"},
		{[]string{"G"}, "gone-g7"},
		{[]string{"G", "g"}, "orchestrator-a1"},
		{[]string{"pgdown"}, "gone-g7"},
		{[]string{"pgdown", "pgup"}, "orchestrator-a1"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.keys, ","), func(t *testing.T) {
			h := newHarness(t, false)
			h.press(tt.keys...)
			if got := selected(t, h); got != tt.want {
				t.Errorf("selected = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestPageKeys(t *testing.T) {
	tests := []struct {
		keys []string
		want Page
	}{
		{[]string{"enter"}, PageDetail},
		{[]string{"enter", "esc"}, PageTable},
		{[]string{"a"}, PageAudit},
		{[]string{"a", "esc"}, PageTable},
		{[]string{"a", "a"}, PageTable},
		{[]string{"enter", "a"}, PageAudit},
		{[]string{"?"}, PageHelp},
		{[]string{"?", "?"}, PageTable},
		{[]string{"enter", "?", "esc"}, PageDetail},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.keys, ","), func(t *testing.T) {
			h := newHarness(t, false)
			h.press(tt.keys...)
			if h.m.page != tt.want {
				t.Errorf("page = %d, want %d", h.m.page, tt.want)
			}
		})
	}
}

func TestQuit(t *testing.T) {
	for _, k := range []string{"q", "ctrl+c"} {
		h := newHarness(t, false)
		_, cmd := h.m.Update(keyPress(k))
		if cmd == nil {
			t.Fatalf("%s: no command", k)
		}
		if _, ok := cmd().(tea.QuitMsg); !ok {
			t.Errorf("%s: command is not tea.Quit", k)
		}
	}
}

func TestDetailLoadsTheSelectedBottle(t *testing.T) {
	h := newHarness(t, false)
	h.press("j", "j", "enter")
	if h.m.detail.detail == nil || h.m.detail.detail.Row.Slug != "implementer-b2" {
		t.Fatalf("detail = %+v, want implementer-b2", h.m.detail.detail)
	}
	if got := h.m.detail.detail.Series; len(got) != seriesBuckets || got[27] != 30_000 || got[29] != 20_000 {
		t.Errorf("series = %v, want 30000 at 27 and 20000 at 29", got)
	}
}

func TestConfirmation(t *testing.T) {
	tests := []struct {
		name    string
		keys    []string
		wantAct []Acted
	}{
		{"y confirms cutoff", []string{"down", "c", "y"}, []Acted{{"reviewer-d4", budget.ActCutoff, actionReason}}},
		{"y confirms freeze", []string{"f", "y"}, []Acted{{"orchestrator-a1", budget.ActFreeze, actionReason}}},
		{"y confirms kill", []string{"G", "x", "y"}, []Acted{{"gone-g7", budget.ActKill, actionReason}}},
		{"y confirms restore", []string{"down", "r", "y"}, []Acted{{"reviewer-d4", budget.ActRestore, actionReason}}},
		{"y confirms pause", []string{"p", "y"}, []Acted{{"orchestrator-a1", budget.ActPause, actionReason}}},
		{"n keeps it running", []string{"p", "n"}, nil},
		{"from the detail view", []string{"j", "j", "enter", "c", "y"}, []Acted{{"implementer-b2", budget.ActCutoff, actionReason}}},
		{"enter cancels", []string{"c", "enter"}, nil},
		{"n cancels", []string{"c", "n"}, nil},
		{"esc cancels", []string{"c", "esc"}, nil},
		{"other keys are swallowed", []string{"c", "j", "x", "q", "enter"}, nil},
		{"cancel then confirm", []string{"x", "n", "x", "y"}, []Acted{{"orchestrator-a1", budget.ActKill, actionReason}}},
		{"tab then enter presses yes", []string{"c", "tab", "enter"}, []Acted{{"orchestrator-a1", budget.ActCutoff, actionReason}}},
		{"right then enter presses yes", []string{"c", "right", "enter"}, []Acted{{"orchestrator-a1", budget.ActCutoff, actionReason}}},
		{"shift+tab wraps to yes", []string{"c", "shift+tab", "enter"}, []Acted{{"orchestrator-a1", budget.ActCutoff, actionReason}}},
		{"space presses the focused button", []string{"c", "tab", "space"}, []Acted{{"orchestrator-a1", budget.ActCutoff, actionReason}}},
		{"right then left is back on no", []string{"c", "right", "left", "enter"}, nil},
		{"tab twice is back on no", []string{"c", "tab", "tab", "enter"}, nil},
		{"esc with yes focused cancels", []string{"c", "tab", "esc"}, nil},
		{"n with yes focused cancels", []string{"c", "tab", "n"}, nil},
		{"focus resets to no", []string{"c", "tab", "esc", "c", "enter"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, false)
			h.press(tt.keys...)
			got := h.daemon.Acts()
			if len(got) != len(tt.wantAct) {
				t.Fatalf("acts = %+v, want %+v", got, tt.wantAct)
			}
			for i := range got {
				if got[i] != tt.wantAct[i] {
					t.Errorf("act %d = %+v, want %+v", i, got[i], tt.wantAct[i])
				}
			}
			if h.m.confirm.Open() {
				t.Error("dialog still open")
			}
		})
	}
}

func TestConfirmationNamesBottleAndDefaultsToNo(t *testing.T) {
	h := newHarness(t, false)
	h.press("down", "x")
	if !h.m.confirm.Open() {
		t.Fatal("x did not open the dialog")
	}
	screen := h.screen(80, 24)
	for _, want := range []string{"Kill reviewer-d4?", "[ No ]", "y: yes"} {
		if !strings.Contains(screen, want) {
			t.Errorf("dialog does not show %q:\n%s", want, screen)
		}
	}
	h.press("q") // swallowed: the dialog is modal
	if !h.m.confirm.Open() {
		t.Error("q closed the dialog")
	}
}

func TestConfirmationShowsTheFocusedButton(t *testing.T) {
	h := newHarness(t, false)
	h.press("c")
	st := h.m.c.Styles
	for _, tt := range []struct {
		key, focused, on, off string
	}{
		{"", "No", "[ No ]", "[ Yes ]"},
		{"tab", "Yes", "[ Yes ]", "[ No ]"},
		{"left", "No", "[ No ]", "[ Yes ]"},
	} {
		if tt.key != "" {
			h.press(tt.key)
		}
		if got := h.m.confirm.Focused(); got != tt.focused {
			t.Errorf("after %q focused = %s, want %s", tt.key, got, tt.focused)
		}
		raw := h.m.View().Content
		if !strings.Contains(raw, st.ButtonOn.Render(tt.on)) || strings.Contains(ansi.Strip(raw), tt.off) {
			t.Errorf("after %q the dialog does not mark %s alone as focused:\n%s", tt.key, tt.on, ansi.Strip(raw))
		}
	}
}

func TestActionResultInStatusLine(t *testing.T) {
	h := newHarness(t, false)
	h.press("c", "y")
	if got := h.m.status.Message(); got != "cut off orchestrator-a1: accepted by the daemon" {
		t.Errorf("status = %q", got)
	}
	h.daemon.actErr = errors.New("operators only")
	h.press("c", "y")
	if got := h.m.status.Message(); !strings.Contains(got, "cut off orchestrator-a1 failed: operators only") || !h.m.status.isError {
		t.Errorf("status = %q, want the failure", got)
	}
	h.press("c", "n")
	if got := h.m.status.Message(); got != "cancelled" {
		t.Errorf("status = %q, want cancelled", got)
	}
}

func TestRefreshPausedWhileDialogOpen(t *testing.T) {
	h := newHarness(t, false)
	before := h.src.Loads()
	h.send(tickMsg{})
	if got := h.src.Loads(); got != before+1 {
		t.Fatalf("loads after a tick = %d, want %d", got, before+1)
	}
	h.press("c")
	before = h.src.Loads()
	h.send(tickMsg{})
	h.send(eventsMsg{ch: make(chan api.Event), n: 3})
	if got := h.src.Loads(); got != before {
		t.Fatalf("loads while the dialog is open = %d, want %d", got, before)
	}
	if !h.m.dirty {
		t.Error("refresh not remembered")
	}
	h.press("esc")
	if got := h.src.Loads(); got != before+1 {
		t.Errorf("loads after closing = %d, want %d (one held-back refresh)", got, before+1)
	}
}

func TestEventsCoalesceWhileLoading(t *testing.T) {
	h := newHarness(t, false)
	h.m.loading = true
	_, cmd := h.m.Update(eventsMsg{ch: make(chan api.Event), n: 1})
	_, cmd2 := h.m.Update(tickMsg{})
	if !h.m.dirty {
		t.Fatal("event during a load not remembered")
	}
	_ = cmd
	_ = cmd2
	before := h.src.Loads()
	h.send(snapshotMsg{snap: Build(Fixture())})
	if got := h.src.Loads(); got != before+1 {
		t.Errorf("loads after the snapshot = %d, want %d", got, before+1)
	}
}

func TestDaemonDownDisablesActions(t *testing.T) {
	h := newHarness(t, false)
	h.daemon.SetUp(false)
	h.load()
	h.press("c")
	if h.m.confirm.Open() {
		t.Fatal("c opened a dialog with the daemon down")
	}
	if got := h.m.status.Message(); !strings.Contains(got, "daemon unreachable") {
		t.Errorf("status = %q, want it to say the daemon is unreachable", got)
	}
	if screen := h.screen(120, 40); !strings.Contains(screen, "UNREACHABLE") || strings.Contains(screen, "cut off!") {
		t.Errorf("screen does not say the daemon is down, or still offers actions:\n%s", screen)
	}
	h.daemon.SetUp(true)
	h.load()
	h.press("c")
	if !h.m.confirm.Open() {
		t.Error("actions not re-enabled when the daemon came back")
	}
}

func TestReadOnlyHasNoActionKeys(t *testing.T) {
	h := newHarness(t, true)
	for _, k := range []string{"c", "p", "f", "x", "r"} {
		h.press(k)
		if h.m.confirm.Open() {
			t.Fatalf("%s opened a dialog in read-only mode", k)
		}
		if got := h.m.status.Message(); got != "" {
			t.Errorf("%s: status = %q, want nothing at all", k, got)
		}
	}
	h.press("?")
	if screen := h.screen(120, 40); strings.Contains(screen, "cut off!") || strings.Contains(screen, "kill!") {
		t.Errorf("help shows action keys in read-only mode:\n%s", screen)
	}
	if len(h.daemon.Acts()) != 0 {
		t.Error("an action was sent in read-only mode")
	}
}

func TestFilter(t *testing.T) {
	tests := []struct {
		keys []string
		want []string
	}{
		{[]string{"/", "t", "e", "s"}, []string{"tester-c3"}},
		{[]string{"/", "c", "u", "t", "enter"}, []string{"reviewer-d4"}},
		{[]string{"/", "c", "o", "d", "e", "x"}, []string{"orchestrator-a1", "solo-e5"}},
		{[]string{"/", "t", "e", "s", "esc"}, nil},
		{[]string{"/", "t", "e", "s", "enter", "esc"}, nil},
		{[]string{"/", "t", "e", "x", "backspace", "s"}, []string{"tester-c3"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.keys, ""), func(t *testing.T) {
			h := newHarness(t, false)
			h.press(tt.keys...)
			got := slugs(h.m.table.Visible())
			if tt.want == nil {
				if len(got) != 7 {
					t.Errorf("visible = %v, want every bottle", got)
				}
				return
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("visible = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestFilterTakesActionKeysAsText(t *testing.T) {
	h := newHarness(t, false)
	h.press("/", "x", "q", "c")
	if h.m.confirm.Open() || h.m.table.Filter() != "xqc" {
		t.Errorf("filter = %q, dialog open = %v; want the keys typed", h.m.table.Filter(), h.m.confirm.Open())
	}
}

func TestSort(t *testing.T) {
	tests := []struct {
		presses int
		mode    SortMode
		want    string
	}{
		{0, SortUsage, "orchestrator-a1,reviewer-d4,implementer-b2,tester-c3,solo-e5,scratch-f6,gone-g7"},
		{1, SortBurn, "orchestrator-a1,implementer-b2,tester-c3,reviewer-d4,gone-g7,scratch-f6,solo-e5"},
		{2, SortName, "gone-g7,orchestrator-a1,implementer-b2,tester-c3,reviewer-d4,scratch-f6,solo-e5"},
		{3, SortUsage, "orchestrator-a1,reviewer-d4,implementer-b2,tester-c3,solo-e5,scratch-f6,gone-g7"},
	}
	for _, tt := range tests {
		t.Run(tt.mode.String(), func(t *testing.T) {
			h := newHarness(t, false)
			for range tt.presses {
				h.press("s")
			}
			if h.m.table.Sort() != tt.mode {
				t.Errorf("sort = %v, want %v", h.m.table.Sort(), tt.mode)
			}
			if got := strings.Join(slugs(h.m.table.Visible()), ","); got != tt.want {
				t.Errorf("order = %s\nwant    %s", got, tt.want)
			}
		})
	}
}

func TestSelectionSurvivesRefresh(t *testing.T) {
	h := newHarness(t, false)
	h.press("j", "j")
	h.src.SetState("implementer-b2", budget.CutOff)
	h.load()
	if got := selected(t, h); got != "implementer-b2" {
		t.Errorf("selected after refresh = %q, want implementer-b2", got)
	}
}

func TestStoreErrorKeepsLastSnapshot(t *testing.T) {
	h := newHarness(t, false)
	h.src.err = errors.New("database is locked")
	h.load()
	if len(h.m.table.Visible()) != 7 || !strings.Contains(h.m.status.Message(), "database is locked") {
		t.Errorf("rows = %d, status = %q", len(h.m.table.Visible()), h.m.status.Message())
	}
}

func slugs(rows []Row) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.Slug
	}
	return out
}
