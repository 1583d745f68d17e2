// Package fleet is bottlecap's side of the fleet (SPEC section 14): the
// Postgres database that the daemons of several hosts share. Each daemon
// claims its host name there, ships the reports of its own ledger to it,
// and reads the other hosts' usage back. It speaks Postgres (pgx) and
// knows nothing of the socket, Docker or the dashboard; the daemon wires
// it to its ledger through the small interfaces declared here.
package fleet

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// connectTimeout bounds one connection attempt: behind a partition that
// swallows packets, a dial would otherwise wait for the kernel's timeout.
const connectTimeout = 5 * time.Second

// maxConns is the pool's size: a shipper, a heartbeat, a view refresh and
// a lease request at a time are all one daemon does at once.
const maxConns = 4

// DB is a fleet database: a pgx pool whose schema is up to date.
type DB struct {
	pool *pgxpool.Pool
}

// Open connects to the fleet database at dsn and applies the pending
// fleet migrations. A DSN that does not parse is an error naming it with
// its password hidden (pgx redacts it); an unreachable server is an error
// the caller may retry.
func Open(ctx context.Context, dsn string) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	cfg.MaxConns = maxConns
	cfg.ConnConfig.ConnectTimeout = connectTimeout
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = "bottlecap"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	db := &DB{pool: pool}
	if err := db.migrate(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("fleet: %s: %w", db.Where(), err)
	}
	return db, nil
}

// Where names the database for logs and errors: user@host:port/dbname,
// never the password.
func (db *DB) Where() string {
	c := db.pool.Config().ConnConfig
	return fmt.Sprintf("%s@%s:%d/%s", c.User, c.Host, c.Port, c.Database)
}

// Pool is the connection pool, for the fleet's other parts and for tests
// that read the tables directly.
func (db *DB) Pool() *pgxpool.Pool { return db.pool }

// Close closes every connection.
func (db *DB) Close() { db.pool.Close() }
