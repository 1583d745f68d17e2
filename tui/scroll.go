package tui

import (
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
)

// scroller is a window onto more lines than fit, shared by the detail and
// audit panes.
type scroller struct {
	keys   *KeyMap
	offset int
	width  int
	height int
}

// key scrolls on the navigation keys and reports whether it used the key.
func (s *scroller) key(msg tea.Msg, total int) bool {
	k, ok := msg.(tea.KeyPressMsg)
	if !ok {
		return false
	}
	page := max(s.height-1, 1)
	switch {
	case key.Matches(k, s.keys.Up):
		s.offset--
	case key.Matches(k, s.keys.Down):
		s.offset++
	case key.Matches(k, s.keys.PageUp):
		s.offset -= page
	case key.Matches(k, s.keys.PageDown):
		s.offset += page
	case key.Matches(k, s.keys.Top):
		s.offset = 0
	case key.Matches(k, s.keys.Bottom):
		s.offset = total
	default:
		return false
	}
	s.clamp(total)
	return true
}

func (s *scroller) clamp(total int) {
	s.offset = max(0, min(s.offset, total-s.height))
}

// window renders the visible part of ls in exactly the scroller's size.
func (s *scroller) window(ls []string) string {
	s.clamp(len(ls))
	end := min(s.offset+s.height, len(ls))
	return lines(strings.Join(ls[s.offset:end], "\n"), s.width, s.height)
}
