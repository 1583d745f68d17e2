package tui

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/bot-bottle/bottlecap/budget"
)

// widths are the terminal widths the layout tests look at.
var widths = []int{80, 100, 120, 140, 160}

// fleetHarness is a harness showing FleetFixture.
func fleetHarness(t *testing.T) *harness {
	t.Helper()
	h := newHarness(t, false)
	h.src.in = FleetFixture()
	h.load()
	return h
}

// screenRow is the screen line of a bottle's table row.
func screenRow(screen, slug string) string {
	for _, l := range strings.Split(screen, "\n") {
		if strings.HasPrefix(strings.TrimLeft(l, " ▸└"), slug+" ") {
			return l
		}
	}
	return ""
}

func TestSlugsShowWholeAtEveryWidth(t *testing.T) {
	for _, w := range widths {
		t.Run(fmt.Sprint(w), func(t *testing.T) {
			h := fleetHarness(t)
			screen := h.screen(w, 30)
			for _, r := range h.m.snap.Rows {
				if screenRow(screen, r.Slug) == "" {
					t.Errorf("at %d columns no row shows %s whole:\n%s", w, r.Slug, screen)
				}
			}
		})
	}
}

func TestWideTerminalsWidenBarsAndScopeNotTheBottleColumn(t *testing.T) {
	rows := Build(FleetFixture()).Rows
	need := 0
	for _, r := range rows {
		need = max(need, len([]rune(slugText(r, 1<<10))))
	}
	widthOf := func(cols []column, title string) int {
		if i := columnIndex(cols, title); i >= 0 {
			return cols[i].width
		}
		return 0
	}
	at120, at140, at160 := layout(120, rows), layout(140, rows), layout(160, rows)
	for _, cols := range [][]column{at140, at160} {
		if got := widthOf(cols, "BOTTLE"); got > need+5 {
			t.Errorf("bottle column %d cells wide, want about its widest slug (%d): the rest belongs to the others", got, need)
		}
	}
	for _, title := range []string{"USAGE", "SCOPE", "AGENT"} {
		if a, b := widthOf(at120, title), widthOf(at160, title); b <= a {
			t.Errorf("%s is %d cells at 120 columns and %d at 160, want it wider", title, a, b)
		}
	}
	if got := widthOf(at160, "USED / LIMIT"); got != 13 {
		t.Errorf("used/limit is %d cells at 160 columns, want its spaced width 13", got)
	}
	if got := widthOf(layout(80, rows), "BOTTLE"); got < need {
		t.Errorf("bottle column %d cells at 80 columns, want its widest slug, %d", got, need)
	}
}

func TestCutMiddleKeepsTheSuffix(t *testing.T) {
	tests := []struct {
		s     string
		width int
		want  string
	}{
		{"implementer-b4d07", 17, "implementer-b4d07"},
		{"implementer-b4d07", 30, "implementer-b4d07"},
		{"implementer-b4d07", 13, "impl…er-b4d07"},
		{"implementer-b4d07", 8, "i…-b4d07"},
		{"implementer-b4d07", 7, "…-b4d07"},
		{"implementer-b4d07", 4, "…d07"},
		{"nohyphenslugatall", 10, "noh…gatall"},
		{"x", 0, ""},
		{"xy", 1, "…"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s_%d", tt.s, tt.width), func(t *testing.T) {
			got := cutMiddle(tt.s, tt.width)
			if got != tt.want {
				t.Errorf("cutMiddle(%q, %d) = %q, want %q", tt.s, tt.width, got, tt.want)
			}
			if w := lipWidth(got); w > tt.width {
				t.Errorf("%q is %d cells, over %d", got, w, tt.width)
			}
		})
	}
	for w := 7; w < 17; w++ {
		if got := cutMiddle("implementer-b4d07", w); !strings.HasSuffix(got, "-b4d07") || lipWidth(got) != w {
			t.Errorf("cutMiddle(implementer-b4d07, %d) = %q, want %d cells ending in -b4d07", w, got, w)
		}
	}
}

func TestDeepSlugIsCutInTheMiddle(t *testing.T) {
	r := Row{Slug: "implementer-b4d07", Depth: 5}
	got := slugText(r, 20)
	if !strings.HasSuffix(got, "-b4d07") || !strings.Contains(got, "…") || lipWidth(got) != 20 {
		t.Errorf("slugText at depth 5 in 20 cells = %q, want the tree branch and a slug cut before -b4d07", got)
	}
}

func TestScopeFit(t *testing.T) {
	parent := budget.Scope{Kind: budget.ScopeParent, ID: "implementer-b4d07"}
	tests := []struct {
		scope  budget.Scope
		window string
		width  int
		want   string
	}{
		{parent, "day", 30, "parent implementer-b4d07·day"},
		{parent, "day", 20, "parent im…-b4d07·day"},
		{parent, "day", 12, "parent·day"},
		{parent, "month", 10, "parent·mo"},
		{parent, "", 10, "parent"},
		{budget.Scope{Kind: budget.ScopeBottle, ID: "x"}, "5h", 10, "bottle·5h"},
		{budget.Scope{Kind: budget.ScopeAgent, ID: "slug/documenter"}, "", 16, "agent documenter"},
		{budget.Scope{Kind: budget.ScopeGlobal}, "week", 10, "global·wk"},
		{budget.Scope{Kind: "none"}, "", 10, "none"},
	}
	for _, tt := range tests {
		if got := scopeFit(tt.scope, tt.window, tt.width); got != tt.want {
			t.Errorf("scopeFit(%v, %q, %d) = %q, want %q", tt.scope, tt.window, tt.width, got, tt.want)
		}
	}
}

func TestStoppedBottlesHaveNoBurnOrETA(t *testing.T) {
	snap := Build(FleetFixture())
	for _, slug := range []string{"implementer-b4e19", "implementer-e2e2e", "researcher-5be01"} {
		r, _ := snap.Row(slug)
		if r.Burn != 0 || r.ETA >= 0 {
			t.Errorf("%s (%s): burn %v, ETA %v; want none", slug, r.State, r.Burn, r.ETA)
		}
	}
	// The fixture gives the stopped implementers the same recent usage as
	// running ones, which do show a rate.
	if r, _ := snap.Row("implementer-90a1c"); r.Burn == 0 || r.ETA < 0 {
		t.Fatalf("running implementer-90a1c: burn %v, ETA %v; want both", r.Burn, r.ETA)
	}
	h := fleetHarness(t)
	screen := h.screen(120, 30)
	for _, slug := range []string{"implementer-b4e19", "implementer-e2e2e"} {
		f := strings.Fields(screenRow(screen, slug))
		// … USED / LIMIT % SCOPE BURN ETA marker state
		if n := len(f); n < 4 || f[n-4] != "—" || f[n-3] != "—" {
			t.Errorf("%s row shows burn and ETA %q, want — and —:\n%s", slug, f, screen)
		}
	}
}

func TestHideStoppedKey(t *testing.T) {
	h := fleetHarness(t)
	h.screen(120, 40)
	all := strings.Join(slugs(h.m.table.Visible()), ",")
	h.press("h")
	want := "orchestrator-a91c2,reviewer-c0ffe,implementer-b4d07,tester-d3a55,implementer-90a1c,researcher-5be01,documenter-77f20"
	if got := strings.Join(slugs(h.m.table.Visible()), ","); got != want {
		t.Errorf("after h: %s\nwant        %s (a stopped bottle with a running child stays)", got, want)
	}
	screen := h.screen(120, 40)
	if !strings.Contains(screen, "2 stopped hidden (h shows)") || !strings.Contains(screen, "h show stopped") {
		t.Errorf("the screen does not say two are hidden and how to show them:\n%s", screen)
	}
	h.press("h")
	if got := strings.Join(slugs(h.m.table.Visible()), ","); got != all {
		t.Errorf("after h h: %s, want every bottle %s", got, all)
	}
	if screen := h.screen(120, 40); strings.Contains(screen, "hidden") {
		t.Errorf("nothing is hidden but the screen says so:\n%s", screen)
	}
}

func TestStoppedHideThemselvesPastAScreen(t *testing.T) {
	tests := []struct {
		killed, height int
		wantHidden     int
	}{
		{3, 24, 0},   // 5 stopped, 19 rows
		{10, 24, 0},  // 12 stopped, 19 rows
		{10, 12, 12}, // 12 stopped, 7 rows
		{40, 24, 42},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d_killed_%d_lines", tt.killed, tt.height), func(t *testing.T) {
			h := newHarness(t, false)
			h.src.in = StoppedFleet(tt.killed)
			h.load()
			screen := h.screen(80, tt.height)
			if got := h.m.table.Hidden(); got != tt.wantHidden {
				t.Fatalf("hidden = %d, want %d", got, tt.wantHidden)
			}
			if tt.wantHidden == 0 {
				return
			}
			if want := fmt.Sprintf("%d stopped hidden (h shows)", tt.wantHidden); !strings.Contains(screen, want) {
				t.Errorf("status does not say %q:\n%s", want, screen)
			}
			h.press("h")
			if got := len(h.m.table.Visible()); got != 7+tt.killed {
				t.Errorf("after h %d rows, want every one of %d", got, 7+tt.killed)
			}
			h.load() // a refresh keeps the operator's choice
			if got := h.m.table.Hidden(); got != 0 {
				t.Errorf("after a refresh %d hidden, want the operator's h to hold", got)
			}
		})
	}
}

func TestHideStoppedKeepsTheTree(t *testing.T) {
	rows := []Row{
		{Slug: "a", State: budget.Killed},
		{Slug: "b", Depth: 1, State: budget.Frozen},
		{Slug: "c", Depth: 2, State: budget.Active},
		{Slug: "d", Depth: 1, State: budget.Killed},
		{Slug: "e", State: budget.Frozen},
		{Slug: "f", Depth: 1, State: budget.Frozen},
		{Slug: "g", State: budget.CutOff},
		{Slug: "h", Depth: 1, State: budget.Paused},
	}
	if got, want := strings.Join(slugs(hideStopped(rows)), ","), "a,b,c,g,h"; got != want {
		t.Errorf("hideStopped = %s, want %s", got, want)
	}
}

// sgr matches one SGR escape and captures its parameters.
var sgr = regexp.MustCompile("\x1b\\[([0-9;]*)m")

// sgrBefore is the parameters of the last SGR before text in line.
func sgrBefore(line, text string) []string {
	i := strings.Index(line, text)
	if i < 0 {
		return nil
	}
	ms := sgr.FindAllStringSubmatch(line[:i], -1)
	if len(ms) == 0 {
		return nil
	}
	return strings.Split(ms[len(ms)-1][1], ";")
}

func TestSelectedRowKeepsItsColours(t *testing.T) {
	h := newHarness(t, false)
	h.screen(120, 40)
	var selected, other string
	for _, l := range strings.Split(h.m.View().Content, "\n") {
		switch {
		case strings.Contains(l, "▸"):
			selected = l
		case strings.Contains(l, "reviewer-d4"):
			other = l
		}
	}
	if selected == "" || other == "" {
		t.Fatal("no selected row or no reviewer-d4 row")
	}
	for _, m := range sgr.FindAllStringSubmatch(selected, -1) {
		for _, p := range strings.Split(m[1], ";") {
			if p == "7" {
				t.Fatalf("the selected row is in reverse video: %q", selected)
			}
		}
	}
	state := sgrBefore(selected, "● active")
	if !contains(state, "32") || !hasBackground(state) {
		t.Errorf("selected row's state is drawn with %v, want green (32) on the highlight background", state)
	}
	bar := sgrBefore(selected, "███")
	if !contains(bar, "32") || !hasBackground(bar) {
		t.Errorf("selected row's bar is drawn with %v, want green (32) on the highlight background", bar)
	}
	if hasBackground(sgrBefore(other, "■ cut off")) {
		t.Errorf("an unselected row has a background: %q", other)
	}
}

func contains(ps []string, p string) bool {
	for _, x := range ps {
		if x == p {
			return true
		}
	}
	return false
}

// hasBackground reports whether SGR parameters set a background colour.
func hasBackground(ps []string) bool {
	for _, p := range ps {
		if len(p) == 2 && p[0] == '4' && p[1] != '9' || len(p) == 3 && p[:2] == "10" || p == "48" {
			return true
		}
	}
	return false
}

func TestAuditDetailsWrapWhole(t *testing.T) {
	in := FleetFixture()
	for _, w := range []int{80, 120} {
		h := fleetHarness(t)
		h.press("a")
		screen := h.screen(w, 30)
		text := strings.Join(strings.Fields(screen), " ")
		for _, e := range in.Audit {
			if !strings.Contains(text, e.Detail) {
				t.Errorf("at %d columns the audit log does not show %q whole:\n%s", w, e.Detail, screen)
			}
		}
		if strings.Contains(screen, "…") {
			t.Errorf("at %d columns the audit log cuts something:\n%s", w, screen)
		}
	}
}

func TestAuditScrollsToTheLastWrappedLine(t *testing.T) {
	h := fleetHarness(t)
	h.src.in.Audit = nil
	for i := range 30 {
		h.src.in.Audit = append(h.src.in.Audit, FleetFixture().Audit[0])
		h.src.in.Audit[i].Seq = int64(100 - i)
	}
	h.src.in.Audit[29].Detail = "the very last entry ends with this sentinel word: omega"
	h.load()
	h.screen(80, 24)
	h.press("a", "G")
	if screen := h.screen(80, 24); !strings.Contains(screen, "omega") {
		t.Errorf("G does not reach the end of the wrapped log:\n%s", screen)
	}
}

func TestHelpProseWraps(t *testing.T) {
	h := newHarness(t, false)
	h.press("?")
	screen := h.screen(80, 30)
	text := strings.Join(strings.Fields(screen), " ")
	for _, p := range h.m.help.notes() {
		if !strings.Contains(text, p) {
			t.Errorf("help does not show %q whole at 80 columns:\n%s", p, screen)
		}
	}
	if strings.Contains(screen, "…") {
		t.Errorf("help cuts something at 80 columns:\n%s", screen)
	}
}

func TestHelpScrollsOnAShortTerminal(t *testing.T) {
	h := newHarness(t, false)
	h.press("?")
	h.screen(80, 14)
	h.press("G")
	notes := h.m.help.notes()
	last := strings.Fields(notes[len(notes)-1])
	if screen := h.screen(80, 14); !strings.Contains(screen, last[len(last)-1]) {
		t.Errorf("G in help does not reach the last note's end %q:\n%s", last[len(last)-1], screen)
	}
	if h.m.page != PageHelp {
		t.Errorf("page = %d, want help still open", h.m.page)
	}
}

func TestFiguresNarrowForm(t *testing.T) {
	r := Row{Used: 12_500, Limit: 1_250_000}
	if got := usedText(r, 13); got != "12.5k / 1.25M" {
		t.Errorf("usedText in 13 = %q, want the spaced form", got)
	}
	if got := usedText(r, 11); got != "12.5k/1.25M" {
		t.Errorf("usedText in 11 = %q, want the narrow form", got)
	}
	over := Row{Percent: 1230}
	if got := percentText(over, 5); got != "1230%" {
		t.Errorf("percentText in 5 = %q, want 1230%%", got)
	}
	if got := percentText(over, 4); got != "12×" {
		t.Errorf("percentText in 4 = %q, want 12×", got)
	}
}

func TestSlugWidthIsSlugTextWidth(t *testing.T) {
	for _, r := range append(Build(FleetFixture()).Rows, Row{Slug: "implementer-b4d07", Depth: 5}) {
		if got, want := slugWidth(r), lipWidth(slugText(r, 1<<10)); got != want {
			t.Errorf("slugWidth(%s at depth %d) = %d, want %d", r.Slug, r.Depth, got, want)
		}
	}
}
