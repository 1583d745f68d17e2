package main

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/bot-bottle/bottlecap/settings"
)

// settingsPath is the settings file under the home directory.
func (m *Main) settingsPath() string { return filepath.Join(m.home(), "settings.yml") }

// runSettings implements `bottlecap settings check [FILE]`.
func (m *Main) runSettings(_ context.Context, args []string) error {
	if len(args) == 0 || args[0] != "check" || len(args) > 2 {
		fmt.Fprintln(m.Stderr, "usage: bottlecap settings check [FILE]")
		return errUsage
	}
	path := m.settingsPath()
	if len(args) == 2 {
		path = args[1]
	}
	s, err := settings.Load(path)
	if err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "%s: ok (precedence %s, shutdown %s, warn at %g%%, %d global limits, %d bottle and %d agent defaults, timezone %s)\n",
		path, s.Precedence, s.Shutdown, s.WarnAt*100, len(s.Budget), len(s.Bottles), len(s.Agents), s.Timezone)
	return nil
}
