package tui

import (
	"fmt"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
)

// Status is the status line: the outcome of the last action or load on
// the left, the table's sort, filter, count and freshness on the right.
type Status struct {
	c       *Common
	msg     string
	isError bool
	width   int

	// What the right-hand side reports, set by the root on each frame.
	sort     SortMode
	filter   string
	shown    int
	total    int
	hidden   int // stopped bottles the table hides
	loadedAt time.Time
	daemonUp bool
	loaded   bool
	paused   bool
}

// NewStatus returns an empty status line.
func NewStatus(c *Common) *Status { return &Status{c: c} }

// Set shows an informational message.
func (s *Status) Set(msg string) { s.msg, s.isError = msg, false }

// SetError shows an error message.
func (s *Status) SetError(msg string) { s.msg, s.isError = msg, true }

// Message is the text on the left, for tests.
func (s *Status) Message() string { return s.msg }

// Update does nothing: the status line only displays.
func (s *Status) Update(tea.Msg) tea.Cmd { return nil }

// SetSize gives the status line its width.
func (s *Status) SetSize(w, _ int) { s.width = w }

// View renders one line.
func (s *Status) View() string {
	st := s.c.Styles
	left := s.msg
	switch {
	case s.isError:
		left = st.Error.Render(left)
	case left == "" && s.loaded && !s.daemonUp:
		left = st.Error.Render("daemon unreachable: showing the store; actions disabled")
	default:
		left = st.Status.Render(left)
	}
	return fit(spread(left, st.Dim.Render(s.right()), s.width), s.width)
}

func (s *Status) right() string {
	parts := []string{"sort: " + s.sort.String()}
	if s.filter != "" {
		parts = append(parts, fmt.Sprintf("filter: %q", s.filter))
	}
	count := fmt.Sprintf("%d/%d bottles", s.shown, s.total)
	if s.hidden > 0 {
		count += fmt.Sprintf(", %d stopped hidden (h shows)", s.hidden)
	}
	parts = append(parts, count)
	switch {
	case s.paused:
		parts = append(parts, "refresh paused")
	case s.loaded:
		parts = append(parts, "updated "+clock(s.loadedAt))
	}
	return strings.Join(parts, " · ")
}

// ShortHelp has nothing: the status line takes no keys.
func (s *Status) ShortHelp() []key.Binding { return nil }

// FullHelp has nothing: the status line takes no keys.
func (s *Status) FullHelp() [][]key.Binding { return nil }
