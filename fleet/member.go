package fleet

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
)

// Ledger is the local ledger as the shipper reads it: the daemon's store
// provides it. Committed must never make the ledger's writer wait.
type Ledger interface {
	ReportsAfter(ctx context.Context, after int64, limit int) ([]budget.SeqReport, error)
	FleetCursor(ctx context.Context) (int64, error)
	SetFleetCursor(ctx context.Context, seq int64) error
	// FleetInstance is the ledger's lasting id in the fleet.
	FleetInstance(ctx context.Context) (string, error)
	Committed() <-chan struct{}
}

// Config is a daemon's membership of the fleet.
type Config struct {
	// Fleet is the resolved fleet settings (DSN and host filled in).
	Fleet *budget.Fleet
	// Ledger is the host's own ledger, the truth the shipper copies.
	Ledger Ledger
	// Instance tells this daemon from another with the same host name;
	// "" takes the ledger's (Ledger.FleetInstance), so a daemon restarted
	// on its ledger is the same instance.
	Instance string
	Log      *slog.Logger

	// Zero values take the defaults below; tests shorten them.
	BatchSize   int           // reports per Postgres transaction
	Refresh     time.Duration // heartbeat and view refresh
	CursorEvery time.Duration // how often the cursor is written locally while shipping
	ShipSpacing time.Duration // the least time between two shipments that are not full batches
	OpTimeout   time.Duration // bound on one Postgres round of work
}

// The defaults of Config.
const (
	DefaultBatchSize   = 500
	DefaultRefresh     = time.Second // SPEC section 14: at least every 2 s
	DefaultCursorEvery = time.Second
	// DefaultShipSpacing gathers a busy host's commits into fewer, larger
	// shipments (at most 100 partial ones a second), which spares the
	// local ingest and Postgres a transaction per commit; a quiet host's
	// report still ships at once.
	DefaultShipSpacing = 10 * time.Millisecond
	DefaultOpTimeout   = 10 * time.Second
)

// Member is a daemon's part in the fleet: it claims the host name, ships
// the ledger's reports, keeps the claim alive and reads the other hosts
// back. Connect once, then Run until the daemon stops.
type Member struct {
	cfg   Config
	fleet atomic.Pointer[budget.Fleet] // budget and timezone may be reloaded
	log   *slog.Logger

	mu      sync.Mutex // held while connecting and claiming
	db      *DB
	claimed bool
	// instance is cfg.Instance or the ledger's, once known; read without
	// mu, which a connection attempt holds for seconds.
	instance atomic.Pointer[string]

	view atomic.Pointer[View]
	ship atomic.Pointer[ShipState]
}

// ShipState is how far the host's shipping has come.
type ShipState struct {
	// Cursor is the last seq shipped; Lag the age of the oldest report
	// not shipped yet (0: caught up).
	Cursor int64
	Lag    time.Duration
	// Err is why the last attempt failed, "" when it did not.
	Err string
}

// NewMember prepares a membership; nothing is opened until Connect or Run.
func NewMember(cfg Config) *Member {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	setDefault(&cfg.BatchSize, DefaultBatchSize)
	setDefault(&cfg.Refresh, DefaultRefresh)
	setDefault(&cfg.CursorEvery, DefaultCursorEvery)
	setDefault(&cfg.ShipSpacing, DefaultShipSpacing)
	setDefault(&cfg.OpTimeout, DefaultOpTimeout)
	m := &Member{cfg: cfg, log: cfg.Log.With("fleet_host", cfg.Fleet.Host)}
	m.instance.Store(&cfg.Instance)
	m.fleet.Store(cfg.Fleet.Clone())
	m.view.Store(&View{})
	m.ship.Store(&ShipState{})
	return m
}

func setDefault[T int | time.Duration](v *T, d T) {
	if *v <= 0 {
		*v = d
	}
}

// Instance is this daemon's instance id ("" until it connected once).
func (m *Member) Instance() string { return *m.instance.Load() }

// Host is the name this daemon goes by in the fleet.
func (m *Member) Host() string { return m.cfg.Fleet.Host }

// SetFleet puts reloaded fleet settings in force for the view's windows.
// The DSN and host stay those the member started with.
func (m *Member) SetFleet(f *budget.Fleet) {
	if f != nil {
		m.fleet.Store(f.Clone())
	}
}

// View is the last snapshot of the fleet.
func (m *Member) View() View { return *m.view.Load() }

// Shipping is where shipping stands.
func (m *Member) Shipping() ShipState { return *m.ship.Load() }

// Connect opens the fleet database and claims the host name. A
// *ClaimError (errors.Is ErrHostClaimed) means another live daemon holds
// the name; any other error an unreachable or broken database, which Run
// keeps trying.
func (m *Member) Connect(ctx context.Context) error {
	_, err := m.session(ctx)
	return err
}

// session is the database with the host claimed, connecting and claiming
// first if need be.
func (m *Member) session(ctx context.Context) (*DB, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	instance := m.Instance()
	if instance == "" {
		id, err := m.cfg.Ledger.FleetInstance(ctx)
		if err != nil {
			return nil, err
		}
		instance = id
		m.instance.Store(&id)
	}
	if m.db == nil {
		db, err := Open(ctx, m.cfg.Fleet.Postgres)
		if err != nil {
			return nil, err
		}
		m.db = db
	}
	if !m.claimed {
		if err := m.db.Claim(ctx, m.cfg.Fleet.Host, instance); err != nil {
			return nil, err
		}
		m.claimed = true
		m.log.Info("fleet: host claimed", "db", m.db.Where(), "instance", instance)
	}
	return m.db, nil
}

// lostClaim notes that another instance took the name, so the next
// session claims it again (and learns whether that one is alive).
func (m *Member) lostClaim(err error) {
	if errors.Is(err, ErrClaimLost) {
		m.mu.Lock()
		m.claimed = false
		m.mu.Unlock()
	}
}

// Run ships and refreshes until ctx ends, then writes the cursor one last
// time and closes the database.
func (m *Member) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { m.shipLoop(ctx) })
	wg.Go(func() { m.refreshLoop(ctx) })
	wg.Wait()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.db != nil {
		m.db.Close()
		m.db = nil
	}
}

// refreshLoop heartbeats and reads the fleet every Refresh.
func (m *Member) refreshLoop(ctx context.Context) {
	tick := time.NewTicker(m.cfg.Refresh)
	defer tick.Stop()
	h := health{log: m.log, loop: "refreshing the fleet view"}
	for {
		h.note(m.refresh(ctx))
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// refresh is one heartbeat and one read of the fleet.
func (m *Member) refresh(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.OpTimeout)
	defer cancel()
	db, err := m.session(ctx)
	if err != nil {
		return err
	}
	if err := db.Heartbeat(ctx, m.cfg.Fleet.Host, m.Instance(), m.Shipping().Lag); err != nil {
		m.lostClaim(err)
		return err
	}
	f := m.fleet.Load()
	v, err := db.ReadView(ctx, f.Budget, f.Location(), time.Now())
	if err != nil {
		return err
	}
	m.view.Store(&v)
	return nil
}

// health is one loop's state for its log: an error is logged when the
// loop starts failing, and recovery when it stops, not every retry (a
// partition would otherwise log once a second).
type health struct {
	log     *slog.Logger
	loop    string
	failing bool
}

func (h *health) note(err error) {
	switch {
	case err != nil && !h.failing:
		h.log.Warn("fleet: "+h.loop+" failed; retrying", "err", err.Error())
	case err == nil && h.failing:
		h.log.Info("fleet: " + h.loop + " works again")
	}
	h.failing = err != nil
}

// Settings are the member's fleet settings in force (reloads included):
// the keeper reads its budget, timezone and lease size from them.
func (m *Member) Settings() *budget.Fleet { return m.fleet.Load() }

// Leaser is the member's database with its host claimed, connecting
// first if need be: the keeper's leases go where its reports go.
func (m *Member) Leaser(ctx context.Context) (Leaser, error) { return m.session(ctx) }

// ReadLeases reads every lease through the member's database.
func (m *Member) ReadLeases(ctx context.Context) ([]LeaseRow, error) {
	db, err := m.session(ctx)
	if err != nil {
		return nil, err
	}
	return db.ReadLeases(ctx)
}
