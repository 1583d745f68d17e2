package fleet

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// HostTTL is how long a daemon's claim on its host name outlives its last
// sign of life: a second daemon with the same name is refused within it,
// and may take the name over after it (the first one died, or lost
// Postgres for that long).
const HostTTL = 15 * time.Second

// ErrHostClaimed is the class of a claim refused because another live
// daemon holds the host name.
var ErrHostClaimed = errors.New("host already claimed")

// ClaimError says which live daemon holds the host name, and for how long
// it has been silent.
type ClaimError struct {
	Host, Instance string
	SeenAgo        time.Duration
}

// Error tells the operator what to do: give this daemon a name of its own.
func (e *ClaimError) Error() string {
	return fmt.Sprintf("host %s is already claimed by a live daemon (instance %s, seen %.0fs ago); set fleet.host to a name of this host's own",
		e.Host, e.Instance, e.SeenAgo.Seconds())
}

// Unwrap makes errors.Is(err, ErrHostClaimed) hold.
func (e *ClaimError) Unwrap() error { return ErrHostClaimed }

// claimSQL takes the host name for instance: a new name, one this
// instance holds already, or one whose holder has been silent longer than
// the TTL. Times are Postgres', so the hosts' clocks need not agree.
const claimSQL = `INSERT INTO fleet_hosts AS h (host, instance, started_at, last_seen)
	VALUES ($1, $2, now(), now())
	ON CONFLICT (host) DO UPDATE SET instance = excluded.instance,
		started_at = excluded.started_at, last_seen = excluded.last_seen
	WHERE h.instance = excluded.instance OR h.last_seen < now() - make_interval(secs => $3)
	RETURNING host`

// Claim takes host for this daemon's instance id, or fails with a
// *ClaimError when another daemon that is alive holds it. A host's shipped
// position and usage survive a new claim: they are the host's, not the
// daemon's.
func (db *DB) Claim(ctx context.Context, host, instance string) error {
	return pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var got string
		err := tx.QueryRow(ctx, claimSQL, host, instance, HostTTL.Seconds()).Scan(&got)
		if errors.Is(err, pgx.ErrNoRows) {
			return holderOf(ctx, tx, host)
		}
		if err != nil {
			return fmt.Errorf("claim host %s: %w", host, err)
		}
		return nil
	})
}

// holderOf is the *ClaimError naming host's live holder.
func holderOf(ctx context.Context, tx pgx.Tx, host string) error {
	e := &ClaimError{Host: host}
	var agoSecs float64
	err := tx.QueryRow(ctx, `SELECT instance, extract(epoch FROM now() - last_seen)::float8 FROM fleet_hosts WHERE host = $1`, host).
		Scan(&e.Instance, &agoSecs)
	if err != nil {
		return fmt.Errorf("claim host %s: %w", host, err)
	}
	e.SeenAgo = time.Duration(agoSecs * float64(time.Second))
	return e
}

// ErrClaimLost is a heartbeat or a shipment that found the host name held
// by another instance: this daemon was silent past the TTL and another
// took the name. It claims again, which says whether that one is alive.
var ErrClaimLost = errors.New("the host's claim was taken over")

// Heartbeat tells the fleet this daemon is alive, with its shipping lag.
// It fails with ErrClaimLost if the name is no longer this instance's.
func (db *DB) Heartbeat(ctx context.Context, host, instance string, lag time.Duration) error {
	tag, err := db.pool.Exec(ctx, `UPDATE fleet_hosts SET last_seen = now(), lag_ms = $3 WHERE host = $1 AND instance = $2`,
		host, instance, lag.Milliseconds())
	if err != nil {
		return fmt.Errorf("heartbeat of host %s: %w", host, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("heartbeat of host %s: %w", host, ErrClaimLost)
	}
	return nil
}
