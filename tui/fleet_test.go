package tui

import (
	"context"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
)

func TestFleetInTheTitleLine(t *testing.T) {
	fl := &api.FleetStatus{Host: "ci-1", Reachable: true, Hosts: []api.FleetHost{{Host: "ci-1", LagMS: 40}, {Host: "ci-2", LagMS: 1250}, {Host: "ci-3"}},
		Budgets: []budget.FleetState{{Provider: "claude", Known: true, Limit: 20_000_000, Window: "month", Used: 2_100_000, Remaining: 46_000}}}
	tests := []struct {
		name      string
		reachable bool
		failOpen  bool
		want      string
	}{
		{"reachable", true, false, "fleet ci-1: claude 2.1M / 20M·month host may spend 46k 3 hosts, lag 1.3s"},
		{"cut off", false, false, "lag 1.3s Postgres UNREACHABLE — spending its lease, then denying"},
		{"cut off, fail_open", false, true, "Postgres UNREACHABLE — local budgets alone decide"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := *fl
			f.Reachable, f.FailOpen = tt.reachable, tt.failOpen
			src := NewFakeSource(Fixture())
			m := NewModel(context.Background(), Options{Source: src, Daemon: NewFakeDaemon(), Now: FixtureClock, Refresh: time.Hour})
			m.Update(tea.WindowSizeMsg{Width: 220, Height: 30})
			snap, err := src.Load(context.Background(), "")
			if err != nil {
				t.Fatal(err)
			}
			snap.DaemonUp, snap.Fleet = true, &f // loadCmd sets them from the daemon
			m.Update(snapshotMsg{snap: snap})
			title, _, _ := strings.Cut(ansi.Strip(m.View().Content), "\n")
			if !strings.Contains(title, tt.want) {
				t.Errorf("title line = %q, want it to hold %q", title, tt.want)
			}
		})
	}
}
