package tui

import (
	"context"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
)

func TestBannerShowsInTheTitleLine(t *testing.T) {
	src := NewFakeSource(Fixture())
	m := NewModel(context.Background(), Options{Source: src, Daemon: NewFakeDaemon(), Now: FixtureClock,
		Refresh: time.Hour, Banner: "DEMO: no containers are touched"})
	m.Update(tea.WindowSizeMsg{Width: 120, Height: 30})
	snap, err := src.Load(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	snap.DaemonUp = true // loadCmd sets it from the daemon
	m.Update(snapshotMsg{snap: snap})
	title, _, _ := strings.Cut(ansi.Strip(m.View().Content), "\n")
	if !strings.Contains(title, "DEMO: no containers are touched") || !strings.Contains(title, "daemon: up") {
		t.Errorf("title line = %q, want the daemon state and the banner", title)
	}
}
