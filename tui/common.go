package tui

import (
	"image/color"
	"time"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"

	"github.com/bot-bottle/bottlecap/budget"
)

// Component is one pane. The root model routes messages to the active
// pane and lays panes out; a pane never reaches into another.
type Component interface {
	// Update handles a message meant for this pane.
	Update(msg tea.Msg) tea.Cmd
	// View renders the pane in exactly the size it was given.
	View() string
	// SetSize gives the pane its box.
	SetSize(width, height int)
	help.KeyMap
}

// Common is what every pane shares: the terminal size, styles, keys and
// the clock, injected so views are deterministic under test.
type Common struct {
	Width, Height int
	Styles        *Styles
	Keys          *KeyMap
	Now           func() time.Time
	ReadOnly      bool
	// Banner is shown in the header's title line (Options.Banner).
	Banner string
}

// Styles are the dashboard's looks in one table. Colour only ever adds to
// text that already reads on its own (state words, markers, bars).
type Styles struct {
	Title     lipgloss.Style
	Header    lipgloss.Style
	Dim       lipgloss.Style
	Selected  lipgloss.Style
	ColHeader lipgloss.Style
	Error     lipgloss.Style
	Good      lipgloss.Style
	Warn      lipgloss.Style
	Dialog    lipgloss.Style
	Danger    lipgloss.Style
	Button    lipgloss.Style
	ButtonOn  lipgloss.Style
	Status    lipgloss.Style
	States    map[budget.State]lipgloss.Style
	Help      help.Styles
}

// Palette of the ANSI 16 colours, so the dashboard follows the operator's
// terminal theme.
var (
	colRed     color.Color = lipgloss.Color("1")
	colGreen   color.Color = lipgloss.Color("2")
	colYellow  color.Color = lipgloss.Color("3")
	colBlue    color.Color = lipgloss.Color("4")
	colMagenta color.Color = lipgloss.Color("5")
	colCyan    color.Color = lipgloss.Color("6")
	colGrey    color.Color = lipgloss.Color("8")
)

// DefaultStyles are the dashboard's styles.
func DefaultStyles() *Styles {
	s := lipgloss.NewStyle()
	return &Styles{
		Title:     s.Bold(true).Foreground(colCyan),
		Header:    s,
		Dim:       s.Foreground(colGrey),
		Selected:  s.Background(colGrey).Bold(true),
		ColHeader: s.Bold(true).Underline(true),
		Error:     s.Foreground(colRed).Bold(true),
		Good:      s.Foreground(colGreen),
		Warn:      s.Foreground(colYellow),
		Dialog:    s.Border(lipgloss.RoundedBorder()).BorderForeground(colRed).Padding(0, 2),
		Danger:    s.Foreground(colRed).Bold(true),
		Button:    s.Padding(0, 1),
		ButtonOn:  s.Padding(0, 1).Reverse(true).Bold(true),
		Status:    s.Foreground(colBlue),
		States: map[budget.State]lipgloss.Style{
			budget.Active:  s.Foreground(colGreen),
			budget.Warned:  s.Foreground(colYellow).Bold(true),
			budget.CutOff:  s.Foreground(colRed).Bold(true),
			budget.Paused:  s.Foreground(colYellow),
			budget.Frozen:  s.Foreground(colCyan).Bold(true),
			budget.Killed:  s.Foreground(colMagenta).Bold(true),
			budget.Pending: s.Foreground(colBlue).Blink(true),
		},
		Help: help.DefaultDarkStyles(),
	}
}

// state renders a state's marker and word in its colour.
func (s *Styles) state(st budget.State, width int) string {
	return s.States[st].Render(fit(stateText(st), width))
}

// newHelp returns a help bubble in the dashboard's styles.
func (c *Common) newHelp() help.Model {
	h := help.New()
	h.Styles = c.Styles.Help
	h.SetWidth(c.Width)
	return h
}

// shortHelp renders one line of key help for a pane.
func (c *Common) shortHelp(bindings []key.Binding) string {
	h := c.newHelp()
	return h.ShortHelpView(bindings)
}
