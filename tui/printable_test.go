package tui

import (
	"strings"
	"testing"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
)

func TestPrintable(t *testing.T) {
	tests := []struct{ in, want string }{
		{"claude-sonnet-4-5", "claude-sonnet-4-5"},
		{"\x1b[41mred\x1b[0m", "[41mred[0m"},
		{"a\tb\nc\rd", "abcd"},
		{"bell\x07 del\x7f csi\u009b", "bell del csi"},
		{"modèle — ok", "modèle — ok"},
	}
	for _, tt := range tests {
		if got := Printable(tt.in); got != tt.want {
			t.Errorf("Printable(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestPeerTextCannotPaintTheScreen: a reporting peer's model and an audit
// detail holding escape sequences reach the dashboard's lines without a
// single control character.
func TestPeerTextCannotPaintTheScreen(t *testing.T) {
	evil := "\x1b[41m\x1b[2J\x1b]0;pwned\x07"
	lines := reportLines([]budget.Report{{Agent: "a", Provider: "claude", Model: evil + "gpt", Complete: true}})
	lines = append(lines, auditLines([]api.AuditEntry{{Seq: 1, Kind: "cutoff", Detail: evil + "reason"}}, true, 120)...)
	for _, l := range lines {
		if strings.IndexFunc(l, isControl) >= 0 {
			t.Errorf("line %q holds control characters", l)
		}
	}
	if !strings.Contains(lines[0], "[41m[2J]0;pwnedgpt") || !strings.Contains(lines[1], "[41m[2J]0;pwnedreason") {
		t.Errorf("lines %q, want the printable rest of the text kept", lines)
	}
}
