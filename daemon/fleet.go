package daemon

import (
	"context"
	"errors"
	"time"

	"github.com/bot-bottle/bottlecap/fleet"
)

// fleetConnectTimeout bounds how long start-up waits for the fleet's
// Postgres: long enough to learn whether another live daemon holds the
// host name, short enough that an unreachable Postgres does not hold up
// local enforcement, which starts without it and ships once it answers.
const fleetConnectTimeout = 5 * time.Second

// fleetMember is the daemon's membership of the fleet, running.
type fleetMember struct {
	m      *fleet.Member
	cancel context.CancelFunc
	done   chan struct{}
}

// startFleet joins the fleet cfg.Fleet names (nothing without one): it
// claims the host name, refusing to start when another live daemon holds
// it, and ships the ledger from then on. An unreachable Postgres is
// logged and retried in the background.
func (d *Daemon) startFleet(ctx context.Context, cfg Config) error {
	if cfg.Fleet == nil {
		return nil
	}
	d.DB.KeepCommittedTail()
	m := fleet.NewMember(fleet.Config{Fleet: cfg.Fleet, Ledger: d.DB, Log: cfg.Log})
	cctx, cancel := context.WithTimeout(ctx, fleetConnectTimeout)
	err := m.Connect(cctx)
	cancel()
	if errors.Is(err, fleet.ErrHostClaimed) {
		return err
	}
	if err != nil {
		cfg.Log.Warn("fleet: Postgres not reachable at start; local budgets apply and shipping starts when it answers",
			"host", cfg.Fleet.Host, "err", err.Error())
	}
	// The member outlives Start's ctx: it runs until Stop.
	rctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	d.fleet = &fleetMember{m: m, cancel: stop, done: make(chan struct{})}
	go func() { defer close(d.fleet.done); m.Run(rctx) }()
	return nil
}

// Fleet is the daemon's fleet membership, nil when it runs alone: its
// view of the other hosts and where its shipping stands.
func (d *Daemon) Fleet() *fleet.Member {
	if d.fleet == nil {
		return nil
	}
	return d.fleet.m
}

// stopFleet stops shipping (writing the cursor a last time) before the
// ledger closes.
func (d *Daemon) stopFleet() {
	if d.fleet == nil {
		return
	}
	d.fleet.cancel()
	<-d.fleet.done
}
