package store

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"time"
)

// checkpointer copies committed WAL frames back into the database file from
// its own connection, in the background. Left to SQLite, that copy (random
// writes all over a large file, then an fsync of it) runs inside whichever
// commit crosses the auto-checkpoint threshold, so ingest would slow down as
// the ledger grows. Here it runs at most once per interval after commits,
// concurrently with the writer, which WAL allows; the writer keeps a high
// auto-checkpoint threshold only as a safety net should this one fall behind.
type checkpointer struct {
	conn     *sql.DB
	interval time.Duration
	kick     chan struct{}
	stop     chan struct{}
	done     chan struct{}
	once     sync.Once
}

// autoCheckpointFrames is the writer's fallback threshold: 16384 frames of
// 4 KiB, a 64 MiB WAL.
const autoCheckpointFrames = 16384

func (db *DB) startCheckpointer(ctx context.Context, interval time.Duration) error {
	conn, err := sql.Open("sqlite", dsn(db.path, []string{"_pragma=busy_timeout(5000)"}))
	if err != nil {
		return fmt.Errorf("open checkpointer: %w", err)
	}
	conn.SetMaxOpenConns(1)
	if err := conn.PingContext(ctx); err != nil {
		conn.Close()
		return fmt.Errorf("open checkpointer: %w", classify(err))
	}
	c := &checkpointer{
		conn:     conn,
		interval: interval,
		kick:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	go c.run()
	db.ckpt = c
	return nil
}

// committed tells the checkpointer there are new frames; it never blocks.
func (c *checkpointer) committed() {
	if c == nil {
		return
	}
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *checkpointer) run() {
	defer close(c.done)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-c.kick:
		}
		// A failed passive checkpoint (say, busy) leaves the frames in the
		// WAL for the next one, and the writer's auto-checkpoint is the
		// fallback, so there is nothing to report.
		_, _ = c.conn.Exec("PRAGMA wal_checkpoint(PASSIVE)")
		timer.Reset(c.interval)
		select {
		case <-c.stop:
			return
		case <-timer.C:
		}
	}
}

// close stops the goroutine and closes its connection; the last connection
// to close checkpoints whatever is left. Closing twice is harmless.
func (c *checkpointer) close() error {
	if c == nil {
		return nil
	}
	var err error
	c.once.Do(func() {
		close(c.stop)
		<-c.done
		err = c.conn.Close()
	})
	return err
}
