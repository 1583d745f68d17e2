package tui

import (
	"context"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
)

// harness drives a Model through Update the way the program would, but
// synchronously: commands run inline, except ones that only wait (ticks,
// event streams), which are dropped after a short wait.
type harness struct {
	t      *testing.T
	m      *Model
	src    *FakeSource
	daemon *FakeDaemon
}

func newHarness(t *testing.T, readOnly bool) *harness {
	t.Helper()
	src, d := NewFakeSource(Fixture()), NewFakeDaemon()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	m := NewModel(ctx, Options{Source: src, Daemon: d, ReadOnly: readOnly, Now: FixtureClock, Refresh: time.Hour})
	h := &harness{t: t, m: m, src: src, daemon: d}
	h.send(tea.WindowSizeMsg{Width: 120, Height: 40})
	h.load()
	return h
}

// load runs one load and applies it.
func (h *harness) load() {
	h.t.Helper()
	detail := ""
	if h.m.page == PageDetail {
		detail = h.m.detail.Slug()
	}
	h.m.loading = true
	h.run(loadCmd(h.m.ctx, h.m.src, h.m.daemon, detail))
}

// send delivers a message and runs what it asks for.
func (h *harness) send(msg tea.Msg) {
	h.t.Helper()
	_, cmd := h.m.Update(msg)
	h.run(cmd)
}

// press sends key presses by name ("enter", "esc", "y", "/", …).
func (h *harness) press(keys ...string) {
	h.t.Helper()
	for _, k := range keys {
		h.send(keyPress(k))
	}
}

// run executes a command tree, feeding each message back into Update.
func (h *harness) run(cmd tea.Cmd) {
	h.t.Helper()
	for _, msg := range h.exec(cmd) {
		switch msg.(type) {
		case tickMsg, resubscribeMsg, subscribedMsg:
			continue // timers and streams are tested on their own
		}
		h.send(msg)
	}
}

// exec runs a command (flattening batches) and collects its messages,
// giving up on commands that block.
func (h *harness) exec(cmd tea.Cmd) []tea.Msg {
	if cmd == nil {
		return nil
	}
	done := make(chan tea.Msg, 1)
	go func() { done <- cmd() }()
	var msg tea.Msg
	select {
	case msg = <-done:
	case <-time.After(100 * time.Millisecond):
		return nil
	}
	switch msg := msg.(type) {
	case nil:
		return nil
	case tea.BatchMsg:
		var out []tea.Msg
		for _, c := range msg {
			out = append(out, h.exec(c)...)
		}
		return out
	}
	return []tea.Msg{msg}
}

// screen renders the model at a size with ANSI stripped.
func (h *harness) screen(w, hh int) string {
	h.m.Update(tea.WindowSizeMsg{Width: w, Height: hh})
	return ansi.Strip(h.m.View().Content)
}

// keyPress builds the message a terminal sends for a named key.
func keyPress(k string) tea.KeyPressMsg {
	switch k {
	case "enter":
		return tea.KeyPressMsg{Code: tea.KeyEnter}
	case "esc":
		return tea.KeyPressMsg{Code: tea.KeyEscape}
	case "up":
		return tea.KeyPressMsg{Code: tea.KeyUp}
	case "down":
		return tea.KeyPressMsg{Code: tea.KeyDown}
	case "pgdown":
		return tea.KeyPressMsg{Code: tea.KeyPgDown}
	case "pgup":
		return tea.KeyPressMsg{Code: tea.KeyPgUp}
	case "left":
		return tea.KeyPressMsg{Code: tea.KeyLeft}
	case "right":
		return tea.KeyPressMsg{Code: tea.KeyRight}
	case "tab":
		return tea.KeyPressMsg{Code: tea.KeyTab}
	case "shift+tab":
		return tea.KeyPressMsg{Code: tea.KeyTab, Mod: tea.ModShift}
	case "space":
		return tea.KeyPressMsg{Code: tea.KeySpace, Text: " "}
	case "backspace":
		return tea.KeyPressMsg{Code: tea.KeyBackspace}
	case "ctrl+c":
		return tea.KeyPressMsg{Code: 'c', Mod: tea.ModCtrl}
	}
	r := []rune(k)[0]
	return tea.KeyPressMsg{Code: r, Text: k}
}
