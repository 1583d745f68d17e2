// Package store is bottlecap's ledger: a WAL-mode SQLite file that the
// daemon alone writes. It holds usage reports, per-(bottle, agent, provider)
// aggregates kept in the same transaction, bottles, runtime budgets, the
// enforcement journal, cutoff memos and the hash-chained audit log. Its
// records are budget's types; the daemon and the dashboard each declare the
// few methods of *DB they use.
package store

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/bot-bottle/bottlecap/migrations"
)

// DB is the SQLite ledger. The daemon opens it with Open: one writer
// connection (SQLite allows one writer at a time; a single connection makes
// that explicit instead of a busy wait) and a pool of query-only readers that
// WAL lets run alongside it. The dashboard opens it with OpenReadOnly.
type DB struct {
	path  string
	write *sql.DB // nil when opened read-only
	read  *sql.DB
	ckpt  *checkpointer // nil when opened read-only
	now   func() int64  // unix nanoseconds; replaceable in tests
	// recent are the report ids not yet merged into report_ids.
	recent recentIDs
	// stmts are the append path's statements, prepared on the writer.
	stmts *appendStmts
	// health is the last write the disk refused, for Writable.
	health writeHealth
	// files notices the ledger's files being deleted under the daemon; nil
	// when opened read-only.
	files *openFiles
	// committed signals commits of new reports (Committed); nil when
	// opened read-only.
	committed chan struct{}
	// tail holds the latest committed reports for ReportsAfter.
	tail committedTail
}

// Option tunes Open.
type Option func(*options)

type options struct {
	synchronous string
	readConns   int
	// cacheKiB is the writer's page cache. Larger is not better here:
	// SQLite walks the whole cache's hash table at the end of some
	// transactions, which at 64 MB cost more than the misses it saved.
	cacheKiB   int
	checkpoint time.Duration
	tightened  func(path string, was fs.FileMode)
}

// WithSynchronousNormal trades durability of the last commits on power loss
// (not on a crash of the daemon) for fewer fsyncs. The default, FULL, makes
// every acknowledged report survive power loss, as SPEC section 5 promises.
func WithSynchronousNormal() Option {
	return func(o *options) { o.synchronous = "NORMAL" }
}

// WithReadConns sets how many read-only connections serve queries (default
// 4), so dashboards and status calls never wait for the writer.
func WithReadConns(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.readConns = n
		}
	}
}

// WithCheckpointInterval sets how often, at most, the background
// checkpointer copies the WAL into the database file while reports arrive
// (default 100ms). Longer means fewer, larger checkpoints and a larger WAL.
func WithCheckpointInterval(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.checkpoint = d
		}
	}
}

// Open opens (creating if needed) the ledger at path for the daemon: its
// files FileMode, WAL mode, pragmas on every connection, pending migrations
// applied. It fails if the file cannot be put in WAL mode, because the
// read-only dashboard relies on it.
func Open(ctx context.Context, path string, opts ...Option) (*DB, error) {
	o := options{synchronous: "FULL", readConns: 4, cacheKiB: 8192, checkpoint: 100 * time.Millisecond}
	for _, opt := range opts {
		opt(&o)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if err := secureFiles(abs, o.tightened); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	db := &DB{path: abs, now: nowNanos, committed: make(chan struct{}, 1)}
	if err := db.openWriter(ctx, o); err != nil {
		return nil, err
	}
	if err := db.loadRecentIDs(ctx); err != nil {
		db.write.Close()
		return nil, fmt.Errorf("open store %s: %w", db.path, err)
	}
	if err := db.openReaders(ctx, o, false); err != nil {
		db.write.Close()
		return nil, err
	}
	if err := db.startCheckpointer(ctx, o.checkpoint); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", db.path, err)
	}
	if db.files, err = watchOpenFiles(db.path, db.checkpointFull); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", db.path, err)
	}
	return db, nil
}

// OpenReadOnly opens an existing ledger for reading while the daemon may be
// writing it. It never writes and never migrates: a missing or older schema
// is an error wrapping migrations.ErrSchema. Write methods of the returned
// DB fail with ErrReadOnly.
func OpenReadOnly(ctx context.Context, path string) (*DB, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open store %s read-only: %w", path, err)
	}
	db := &DB{path: abs, now: nowNanos}
	if err := db.openReaders(ctx, options{readConns: 4}, true); err != nil {
		return nil, err
	}
	if err := migrations.Check(ctx, db.read); err != nil {
		db.read.Close()
		return nil, fmt.Errorf("open store %s read-only: %w", abs, err)
	}
	return db, nil
}

func (db *DB) openWriter(ctx context.Context, o options) error {
	dsn := dsn(db.path, []string{
		"_pragma=busy_timeout(5000)",
		"_pragma=foreign_keys(1)",
		"_pragma=journal_mode(WAL)",
		"_pragma=synchronous(" + o.synchronous + ")",
		fmt.Sprintf("_pragma=cache_size(-%d)", o.cacheKiB),
		fmt.Sprintf("_pragma=wal_autocheckpoint(%d)", autoCheckpointFrames),
		// A multi-row INSERT keeps a statement journal (to undo itself
		// alone should it fail halfway); in a temp file that is a write
		// syscall per page it touches. Memory is enough for a 64-row one.
		"_pragma=temp_store(MEMORY)",
		"_txlock=immediate",
	})
	w, err := sql.Open("sqlite", dsn)
	if err != nil {
		return fmt.Errorf("open store %s: %w", db.path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if err := checkWAL(ctx, w); err != nil {
		w.Close()
		return fmt.Errorf("open store %s: %w", db.path, classify(err))
	}
	if err := migrations.Run(ctx, w); err != nil {
		w.Close()
		return fmt.Errorf("open store %s: %w", db.path, classify(err))
	}
	if db.stmts, err = prepareAppendStmts(ctx, w); err != nil {
		w.Close()
		return fmt.Errorf("open store %s: %w", db.path, classify(err))
	}
	db.write = w
	return nil
}

// openReaders opens the query-only pool. Readers use deferred transactions:
// an immediate one would take the write lock. ro also opens the file itself
// read-only, for the dashboard.
func (db *DB) openReaders(ctx context.Context, o options, ro bool) error {
	params := []string{
		"_pragma=busy_timeout(5000)",
		"_pragma=foreign_keys(1)",
		"_pragma=query_only(1)",
	}
	if ro {
		params = append(params, "mode=ro")
	}
	r, err := sql.Open("sqlite", dsn(db.path, params))
	if err != nil {
		return fmt.Errorf("open store %s: %w", db.path, err)
	}
	r.SetMaxOpenConns(o.readConns)
	r.SetMaxIdleConns(o.readConns)
	if err := checkWAL(ctx, r); err != nil {
		r.Close()
		return fmt.Errorf("open store %s: %w", db.path, classify(err))
	}
	db.read = r
	return nil
}

// dsn builds a file: URI, escaping the path so that '?' or '#' in a
// directory name cannot be taken for parameters.
func dsn(path string, params []string) string {
	u := url.URL{Path: filepath.ToSlash(path)}
	return "file:" + u.EscapedPath() + "?" + strings.Join(params, "&")
}

// checkWAL makes sure the journal mode really is WAL: on a file system that
// cannot do shared memory SQLite silently keeps another mode.
func checkWAL(ctx context.Context, d *sql.DB) error {
	var mode string
	if err := d.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("read journal_mode: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("journal_mode is %q, want wal", mode)
	}
	return nil
}

// Path is the absolute path of the ledger file, for status output.
func (db *DB) Path() string { return db.path }

// Close closes the checkpointer, the readers and the writer. Close a Writer
// using db first.
func (db *DB) Close() error {
	err := db.ckpt.close()
	if serr := db.stmts.close(); err == nil {
		err = serr
	}
	if rerr := db.read.Close(); err == nil {
		err = rerr
	}
	if db.write != nil {
		if werr := db.write.Close(); err == nil {
			err = werr
		}
	}
	if err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}

// checkpointFull copies every committed frame of the WAL into the database
// file and syncs it, on the checkpointer's connection (the writer's may
// hold a statement open, which makes SQLite refuse).
func (db *DB) checkpointFull() error {
	var busy, frames, copied int
	err := db.ckpt.conn.QueryRow("PRAGMA wal_checkpoint(FULL)").Scan(&busy, &frames, &copied)
	if err != nil {
		return classify(err)
	}
	if busy != 0 || copied < frames {
		return fmt.Errorf("checkpoint incomplete: %d of %d frames copied", copied, frames)
	}
	return nil
}

// writer returns the writer connection, or ErrReadOnly for a dashboard's
// DB, or budget.ErrLedgerLost once the ledger's files were deleted under it.
func (db *DB) writer() (*sql.DB, error) {
	if db.write == nil {
		return nil, ErrReadOnly
	}
	if err := db.files.check(); err != nil {
		return nil, err
	}
	return db.write, nil
}
