package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/bot-bottle/bottlecap/client"
	"github.com/bot-bottle/bottlecap/migrations"
	"github.com/bot-bottle/bottlecap/store"
	"github.com/bot-bottle/bottlecap/tui"
)

// dashCommand is `bottlecap dash`: the dashboard over the ledger, opened
// read-only, acting through the daemon's socket.
func (m *Main) dashCommand() *cobra.Command {
	var readOnly bool
	var db string
	var df *daemonFlags
	cmd := &cobra.Command{
		Use:   "dash",
		Short: "The dashboard",
		Long: "A live view of the ledger: global usage against budget, every bottle in its parent tree with its usage, " +
			"burn rate, time to exhaustion and state, a detail view per bottle and the audit log. " +
			"Keys: c cutoff, p pause, f freeze, x kill, r restore (each asks first), / filter, s sort, enter details, a audit, " +
			"F the fleet's hosts (on a fleet member), ? every key, q quit. " +
			"It reads the ledger and acts through the daemon's socket; with the daemon down it shows the ledger and disables the action keys.",
		Args: positional(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if db == "" {
				db = filepath.Join(m.home(), "bot-bottle.db")
			}
			ctx := cmd.Context()
			d, err := openDash(ctx, db, m.settingsPath(), m.socketPath(df.socket))
			if err != nil {
				return err
			}
			defer d.Close()
			o := d.Options()
			o.ReadOnly, o.Input, o.Output = readOnly, m.Stdin, m.Stdout
			return tui.Run(ctx, o)
		},
	}
	df = addDaemonFlags(cmd, false)
	cmd.Flags().BoolVar(&readOnly, "readonly", false, "remove the action keys: watch only")
	cmd.Flags().StringVar(&db, "db", "", "ledger `path` (default $BOT_BOTTLE_HOME/bot-bottle.db)")
	return cmd
}

// dash is what the dashboard runs on: the ledger opened read-only and a
// client of the daemon. Nothing in it logs: the terminal is the
// dashboard's.
type dash struct {
	db     *store.DB
	client *client.Client
	source *tui.StoreSource
}

// openDash opens the ledger at dbPath read-only and a client of the daemon
// at socket. A missing or unmigrated ledger is the one error an operator
// meets before ever starting the daemon, so it says what to do.
func openDash(ctx context.Context, dbPath, settingsPath, socket string) (*dash, error) {
	if _, err := os.Stat(dbPath); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("there is no ledger at %s yet: start the daemon first (bottlecap serve), "+
			"it creates the ledger; then run bottlecap dash again", dbPath)
	}
	if err := canRead(dbPath); err != nil {
		return nil, err
	}
	db, err := store.OpenReadOnly(ctx, dbPath)
	if errors.Is(err, migrations.ErrSchema) {
		return nil, fmt.Errorf("%w; start the daemon (bottlecap serve), it brings the ledger up to date", err)
	}
	if err != nil {
		return nil, err
	}
	// No retry: an unreachable daemon must show at once as "daemon down",
	// not hold up the operator's key press.
	c := client.New(socket, client.WithRetry(0))
	src := tui.NewStoreSource(db, settingsPath, db, nil)
	return &dash{db: db, client: c, source: src}, nil
}

// canRead says in plain words why the dashboard may not read the ledger:
// its files are store.FileMode, for the daemon's user and root only, even
// when the socket's group lets an operator act through the API.
func canRead(dbPath string) error {
	f, err := os.Open(dbPath)
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("cannot read the ledger at %s: only the daemon's user and root may (its files are %04o); "+
			"run bottlecap dash as one of them, or use bottlecap status, bottle ls and audit, which ask the daemon over the socket",
			dbPath, store.FileMode)
	}
	if err != nil {
		return fmt.Errorf("open ledger: %w", err)
	}
	return f.Close()
}

// Options are the dashboard's options with its source and daemon set.
func (d *dash) Options() tui.Options {
	return tui.Options{Source: d.source, Daemon: tui.NewClientDaemon(d.client)}
}

// Close closes the client and the ledger.
func (d *dash) Close() error {
	d.client.Close()
	return d.db.Close()
}
