package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/bot-bottle/bottlecap/budget"
)

// runServe runs the daemon in the foreground until ctx is cancelled.
func (m *Main) runServe(ctx context.Context, args []string) error {
	fs := m.flags("serve")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	home := m.home()
	if err := os.MkdirAll(filepath.Join(home, "run"), 0o750); err != nil {
		return fmt.Errorf("create home: %w", err)
	}
	if _, err := budget.LoadSettings(m.settingsPath()); err != nil {
		return err
	}
	fmt.Fprintf(m.Stderr, "bottlecap: ready (home %s)\n", home)
	<-ctx.Done()
	fmt.Fprintln(m.Stderr, "bottlecap: shutting down")
	return nil
}
