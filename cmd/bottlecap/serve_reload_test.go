package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/daemon"
)

// TestShutdownDuringSlowReload holds a settings reload inside its parse
// (as a huge or pathological file would) and cancels the daemon's context,
// as SIGTERM does: the loop shuts down without waiting for the parse, and
// the abandoned reload's settings are never put in force.
func TestShutdownDuringSlowReload(t *testing.T) {
	dir, err := os.MkdirTemp("", "bcr")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	d, err := daemon.Start(context.Background(), daemon.Config{Socket: filepath.Join(dir, "run", "s.sock"),
		DBPath: filepath.Join(dir, "bot-bottle.db"), Home: dir, Settings: budget.DefaultSettings(), Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	strict := budget.DefaultSettings()
	strict.Precedence = budget.Strict
	logs := &syncBuffer{}
	sv := &served{log: slog.New(slog.NewTextHandler(logs, nil)), d: d, settingsPath: filepath.Join(dir, "settings.yml"),
		settings: budget.DefaultSettings(), load: func(string) (*budget.Settings, error) {
			close(entered)
			<-release
			return strict, nil
		}}
	ctx, cancel := context.WithCancel(context.Background())
	hup := make(chan os.Signal, 1)
	stopped := make(chan error, 1)
	go func() { stopped <- sv.loop(ctx, hup) }()
	hup <- syscall.SIGHUP
	<-entered
	cancel() // SIGTERM, while the reload is still parsing
	if err := <-stopped; err != nil {
		t.Errorf("loop returned %v, want a clean shutdown", err)
	}
	close(release)
	if strings.Contains(logs.String(), "settings reloaded") {
		t.Errorf("the abandoned reload was put in force:\n%s", logs.String())
	}
}

// TestReloadLogsWhatChanged: each reload logs one line naming the keys
// whose values changed, or that nothing in force did.
func TestReloadLogsWhatChanged(t *testing.T) {
	dir, err := os.MkdirTemp("", "bcr")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	d, err := daemon.Start(context.Background(), daemon.Config{Socket: filepath.Join(dir, "run", "s.sock"),
		DBPath: filepath.Join(dir, "bot-bottle.db"), Home: dir, Settings: budget.DefaultSettings(), Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Stop(context.Background())
	next := budget.DefaultSettings()
	next.Budget["claude"] = budget.Lifetime(1_000_000)
	next.Bottles["dev"] = budget.Defaults{Shutdown: budget.Kill}
	logs := &syncBuffer{}
	sv := &served{log: slog.New(slog.NewTextHandler(logs, nil)), d: d, settingsPath: filepath.Join(dir, "settings.yml"),
		settings: budget.DefaultSettings()}
	sv.apply(reloaded{why: "SIGHUP", st: next})
	sv.apply(reloaded{why: "settings file changed", st: next})
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	want := []string{
		`msg="settings reloaded: 1 limit in force changed: global claude none → 1000000 (settings)" why=SIGHUP file=` + sv.settingsPath + ` changed="bottles.dev budget.claude"`,
		`msg="settings reloaded: nothing in force changed" why="settings file changed"`,
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d log lines, want %d:\n%s", len(lines), len(want), logs.String())
	}
	for i, w := range want {
		if !strings.Contains(lines[i], w) {
			t.Errorf("line %d:\n got %s\nwant it to contain %s", i, lines[i], w)
		}
	}
}
