package tui

// This file is compiled into the package under test only, so the external
// tests (package tui_test) share its fixture and fakes.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
)

// FixtureNow is the fixture's clock.
var FixtureNow = time.Date(2026, 11, 21, 20, 0, 0, 0, time.UTC)

// FixtureClock returns FixtureNow.
func FixtureClock() time.Time { return FixtureNow }

// Fixture is a small host: a parent tree three deep and a bottle in every
// state.
func Fixture() Input {
	s := budget.DefaultSettings()
	s.Budget = budget.Limits{"claude": budget.Lifetime(5_000_000), "codex": budget.Lifetime(2_000_000)}
	at := FixtureNow
	return Input{
		Now:      at,
		Settings: s,
		Bottles: []budget.Bottle{
			{Slug: "orchestrator-a1", Agent: "orchestrator", Name: "dev", Budget: budget.Limits{"claude": budget.Lifetime(2_000_000)},
				AgentBudgets: map[string]budget.Limits{"orchestrator": {"codex": budget.Lifetime(100_000)}}, State: budget.Active},
			{Slug: "implementer-b2", Agent: "implementer", Name: "dev", Parent: "orchestrator-a1", Budget: budget.Limits{"claude": budget.Lifetime(1_000_000)}, State: budget.Active},
			{Slug: "tester-c3", Agent: "tester", Parent: "implementer-b2", State: budget.Active},
			{Slug: "reviewer-d4", Agent: "reviewer", Parent: "orchestrator-a1", Budget: budget.Limits{"claude": budget.Lifetime(200_000)}, State: budget.CutOff},
			{Slug: "solo-e5", Agent: "coder", State: budget.Frozen},
			{Slug: "scratch-f6", Agent: "scratch", State: budget.Active},
			{Slug: "gone-g7", Agent: "old", State: budget.Killed},
		},
		Totals: []budget.Total{
			{Bottle: "orchestrator-a1", Agent: "orchestrator", Provider: "claude", Counted: 150_000, Reports: 40},
			{Bottle: "orchestrator-a1", Agent: "orchestrator", Provider: "codex", Counted: 20_000, Reports: 5},
			{Bottle: "implementer-b2", Agent: "implementer", Provider: "claude", Counted: 600_000, Reports: 120},
			{Bottle: "tester-c3", Agent: "tester", Provider: "claude", Counted: 250_000, Reports: 60},
			{Bottle: "reviewer-d4", Agent: "reviewer", Provider: "claude", Counted: 212_000, Reports: 30},
			{Bottle: "solo-e5", Agent: "coder", Provider: "codex", Counted: 1_200_000, Reports: 300},
			{Bottle: "scratch-f6", Agent: "scratch", Provider: "claude", Counted: 3_000, Reports: 2},
		},
		Actions: []budget.Action{
			{ID: 1, Bottle: "reviewer-d4", Kind: budget.ActCutoff, Reason: "runaway loop", Operator: true, Status: budget.StatusDone},
			{ID: 2, Bottle: "solo-e5", Kind: budget.ActFreeze, Reason: "global budget codex 60% by night", Status: budget.StatusDone},
			{ID: 3, Bottle: "scratch-f6", Kind: budget.ActKill, Reason: "operator", Operator: true, Status: budget.StatusPending, Attempts: 2, LastError: "engine timeout"},
		},
		Buckets: []budget.UsageBucket{
			{Bottle: "implementer-b2", Agent: "implementer", Provider: "claude", Start: at.Add(-3 * time.Minute), Counted: 30_000},
			{Bottle: "implementer-b2", Agent: "implementer", Provider: "claude", Start: at.Add(-time.Minute), Counted: 20_000},
			{Bottle: "implementer-b2", Agent: "implementer", Provider: "claude", Start: at.Add(-20 * time.Minute), Counted: 5_000},
			{Bottle: "tester-c3", Agent: "tester", Provider: "claude", Start: at.Add(-2 * time.Minute), Counted: 10_000},
			{Bottle: "orchestrator-a1", Agent: "orchestrator", Provider: "claude", Start: at.Add(-4 * time.Minute), Counted: 2_500},
		},
		Audit: []api.AuditEntry{
			{Seq: 4, TS: at.Add(-time.Minute), Kind: "action_pending", Bottle: "scratch-f6", Detail: "kill: operator"},
			{Seq: 3, TS: at.Add(-10 * time.Minute), Kind: "warn", Bottle: "implementer-b2", Detail: "bottle budget implementer-b2 past its warn threshold: 850000 of 1000000 claude tokens used"},
			{Seq: 2, TS: at.Add(-30 * time.Minute), Kind: "action_done", Bottle: "reviewer-d4", Detail: "cutoff: runaway loop"},
			{Seq: 1, TS: at.Add(-2 * time.Hour), Kind: "settings", Detail: "settings loaded"},
		},
	}
}

// WindowedFixture is Fixture with windowed limits: the host capped at
// 20M claude tokens a month, implementer-b2 at 1M a day and 400k over
// the last 5h, with the windows' usage as the ledger gives it.
func WindowedFixture() Input {
	in := Fixture()
	in.Settings.Budget = budget.Limits{"claude": {{Tokens: 20_000_000, Window: budget.MonthWindow}}, "codex": budget.Lifetime(2_000_000)}
	for i := range in.Bottles {
		if in.Bottles[i].Slug == "implementer-b2" {
			in.Bottles[i].Budget = budget.Limits{"claude": {{Tokens: 1_000_000, Window: budget.DayWindow}, {Tokens: 400_000, Window: budget.RollingWindow(5, 'h')}}}
		}
	}
	in.Windows = budget.WindowLoadsFor(in.Settings, in.Bottles, in.Budgets, in.Now)
	for i, l := range in.Windows {
		row := func(bottle, agent string, n int64) budget.UsageBucket {
			return budget.UsageBucket{Bottle: bottle, Agent: agent, Provider: "claude", Start: l.Since, Counted: n}
		}
		switch l.Window {
		case budget.DayWindow:
			in.Windows[i].Rows = []budget.UsageBucket{row("implementer-b2", "implementer", 450_000), row("tester-c3", "tester", 100_000)}
		case budget.MonthWindow:
			in.Windows[i].Rows = []budget.UsageBucket{row("implementer-b2", "implementer", 600_000), row("orchestrator-a1", "orchestrator", 150_000)}
		default:
			in.Windows[i].Rows = []budget.UsageBucket{row("implementer-b2", "implementer", 300_000)}
		}
	}
	return in
}

// FleetFixture is a host as bot-bottle fills one: slugs of an agent name
// and a five-character suffix (17 cells for an implementer), two
// implementers told apart only by their suffix, a tree three deep with a
// parent's daily limit governing its grandchild, stopped bottles (one
// with a running child), and audit details longer than a line.
func FleetFixture() Input {
	s := budget.DefaultSettings()
	s.Budget = budget.Limits{"claude": budget.Lifetime(50_000_000), "codex": budget.Lifetime(10_000_000)}
	at := FixtureNow
	b := func(slug, agent, parent string, st budget.State) budget.Bottle {
		return budget.Bottle{Slug: slug, Agent: agent, Name: "fleet", Parent: parent, State: st}
	}
	bottles := []budget.Bottle{
		b("orchestrator-a91c2", "orchestrator", "", budget.Active),
		b("implementer-b4d07", "implementer", "orchestrator-a91c2", budget.Active),
		b("implementer-b4e19", "implementer", "orchestrator-a91c2", budget.Frozen),
		b("tester-d3a55", "tester", "implementer-b4d07", budget.Active),
		b("implementer-90a1c", "implementer", "tester-d3a55", budget.Active),
		b("reviewer-c0ffe", "reviewer", "orchestrator-a91c2", budget.CutOff),
		b("researcher-5be01", "researcher", "", budget.Frozen),
		b("documenter-77f20", "documenter", "researcher-5be01", budget.Active),
		b("implementer-e2e2e", "implementer", "", budget.Killed),
	}
	bottles[0].Budget = budget.Limits{"claude": budget.Lifetime(20_000_000)}
	bottles[1].Budget = budget.Limits{"claude": {{Tokens: 2_000_000, Window: budget.DayWindow}}}
	bottles[5].Budget = budget.Limits{"claude": budget.Lifetime(200_000)}
	bottles[7].AgentBudgets = map[string]budget.Limits{"documenter": {"codex": budget.Lifetime(1_500_000)}}
	total := func(slug, agent, provider string, n int64) budget.Total {
		return budget.Total{Bottle: slug, Agent: agent, Provider: provider, Counted: n, Reports: n / 5_000}
	}
	in := Input{
		Now: at, Settings: s, Bottles: bottles,
		Totals: []budget.Total{
			total("orchestrator-a91c2", "orchestrator", "claude", 1_250_000),
			total("implementer-b4d07", "implementer", "claude", 900_000),
			total("implementer-b4e19", "implementer", "claude", 4_400_000),
			total("tester-d3a55", "tester", "claude", 520_000),
			total("implementer-90a1c", "implementer", "claude", 310_000),
			total("reviewer-c0ffe", "reviewer", "claude", 240_000),
			total("researcher-5be01", "researcher", "codex", 3_100_000),
			total("documenter-77f20", "documenter", "codex", 1_120_000),
			total("implementer-e2e2e", "implementer", "claude", 7_700_000),
		},
		Actions: []budget.Action{
			{ID: 1, Bottle: "reviewer-c0ffe", Kind: budget.ActCutoff, Reason: "bottle budget exhausted", Status: budget.StatusDone},
			{ID: 2, Bottle: "implementer-b4e19", Kind: budget.ActFreeze, Reason: "operator: parked overnight", Operator: true, Status: budget.StatusDone},
			{ID: 3, Bottle: "implementer-e2e2e", Kind: budget.ActKill, Reason: "operator: runaway loop", Operator: true, Status: budget.StatusDone},
		},
		Audit: []api.AuditEntry{
			{Seq: 1042, TS: at.Add(-2 * time.Minute), Kind: "warn", Bottle: "implementer-b4d07",
				Detail: "bottle budget implementer-b4d07 past its warn threshold: 1,730,000 of 2,000,000 claude tokens used today; the tester-d3a55 subtree accounts for 830,000 of them"},
			{Seq: 1041, TS: at.Add(-9 * time.Minute), Kind: "action_done", Bottle: "implementer-e2e2e",
				Detail: "kill #3 (operator): runaway loop; containers and networks removed, nothing saved"},
			{Seq: 1040, TS: at.Add(-40 * time.Minute), Kind: "action_pending", Bottle: "implementer-b4e19",
				Detail: "freeze #2 (operator): parked overnight"},
			{Seq: 1039, TS: at.Add(-3 * time.Hour), Kind: "settings", Detail: "settings loaded"},
		},
	}
	for _, slug := range []string{"implementer-b4d07", "tester-d3a55", "implementer-90a1c", "orchestrator-a91c2", "implementer-b4e19", "implementer-e2e2e"} {
		in.Buckets = append(in.Buckets, budget.UsageBucket{Bottle: slug, Agent: agentOf(bottles, slug), Provider: "claude", Start: at.Add(-2 * time.Minute), Counted: 21_000})
	}
	in.Buckets = append(in.Buckets, budget.UsageBucket{Bottle: "documenter-77f20", Agent: "documenter", Provider: "codex", Start: at.Add(-time.Minute), Counted: 40_000})
	in.Windows = budget.WindowLoadsFor(in.Settings, in.Bottles, in.Budgets, in.Now)
	for i := range in.Windows {
		in.Windows[i].Rows = []budget.UsageBucket{
			{Bottle: "implementer-b4d07", Agent: "implementer", Provider: "claude", Start: in.Windows[i].Since, Counted: 900_000},
			{Bottle: "tester-d3a55", Agent: "tester", Provider: "claude", Start: in.Windows[i].Since, Counted: 520_000},
			{Bottle: "implementer-90a1c", Agent: "implementer", Provider: "claude", Start: in.Windows[i].Since, Counted: 310_000},
		}
	}
	return in
}

func agentOf(bottles []budget.Bottle, slug string) string {
	for _, b := range bottles {
		if b.Slug == slug {
			return b.Agent
		}
	}
	return ""
}

// StoppedFleet is Fixture with n more killed bottles, for hiding stopped
// ones.
func StoppedFleet(n int) Input {
	in := Fixture()
	for i := range n {
		slug := fmt.Sprintf("worker-%05x", 0xa0000+i)
		in.Bottles = append(in.Bottles, budget.Bottle{Slug: slug, Agent: "worker", State: budget.Killed})
	}
	return in
}

// FakeSource builds snapshots from an Input, as the store source does.
type FakeSource struct {
	mu    sync.Mutex
	in    Input
	err   error
	loads atomic.Int64
}

// NewFakeSource serves in.
func NewFakeSource(in Input) *FakeSource { return &FakeSource{in: in} }

// Load builds the snapshot, with a detail when asked.
func (f *FakeSource) Load(_ context.Context, detail string) (Snapshot, error) {
	f.loads.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return Snapshot{}, f.err
	}
	s := Build(f.in)
	if r, ok := s.Row(detail); ok {
		d := BuildDetail(f.in, r)
		d.Reports = []budget.Report{{ID: "msg_1", Bottle: detail, Agent: r.Agent, Provider: "claude", Model: "claude-sonnet-4-5",
			Usage: budget.Usage{Input: 656, Output: 74}, Counted: 730, Complete: true, TS: FixtureNow.Add(-30 * time.Second)}}
		for _, e := range f.in.Audit {
			if e.Bottle == detail {
				d.Audit = append(d.Audit, e)
			}
		}
		s.Detail = &d
	}
	return s, nil
}

// Loads counts the loads so far.
func (f *FakeSource) Loads() int64 { return f.loads.Load() }

// SetState changes a bottle's state for the next load.
func (f *FakeSource) SetState(slug string, st budget.State) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.in.Bottles {
		if f.in.Bottles[i].Slug == slug {
			f.in.Bottles[i].State = st
		}
	}
}

// Acted is one action the fake daemon received.
type Acted struct {
	Slug   string
	Action budget.ActionKind
	Reason string
}

// FakeDaemon records actions and serves events from a channel.
type FakeDaemon struct {
	up     atomic.Bool
	mu     sync.Mutex
	acts   []Acted
	actErr error
	events chan api.Event
	held   map[string]int64
	fleet  *api.FleetStatus
	// refuses makes the fake refuse its status, as the daemon does to a
	// user who is not an operator.
	refuses bool
}

// NewFakeDaemon returns a reachable daemon with an event channel.
func NewFakeDaemon() *FakeDaemon {
	d := &FakeDaemon{events: make(chan api.Event, 16)}
	d.up.Store(true)
	return d
}

// SetUp makes the daemon reachable or not.
func (d *FakeDaemon) SetUp(up bool) { d.up.Store(up) }

// Emit sends an event to the dashboard.
func (d *FakeDaemon) Emit(e api.Event) { d.events <- e }

// Acts returns the actions received.
func (d *FakeDaemon) Acts() []Acted {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]Acted(nil), d.acts...)
}

// Act records the action.
func (d *FakeDaemon) Act(_ context.Context, slug string, a budget.ActionKind, reason string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.up.Load() {
		return errors.New("daemon unreachable")
	}
	d.acts = append(d.acts, Acted{slug, a, reason})
	return d.actErr
}

// SetHeld sets what the fake's allowances hold.
func (d *FakeDaemon) SetHeld(held map[string]int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.held = held
}

// SetFleet sets the fleet the fake says it belongs to (nil: a host
// alone).
func (d *FakeDaemon) SetFleet(fl *api.FleetStatus) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.fleet = fl
}

// RefuseStatus makes the fake answer but refuse its status.
func (d *FakeDaemon) RefuseStatus() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.refuses = true
}

// Probe reports the fake's reachability, holds and fleet.
func (d *FakeDaemon) Probe(context.Context) Probe {
	d.mu.Lock()
	defer d.mu.Unlock()
	up := d.up.Load()
	if !up || d.refuses {
		return Probe{Up: up}
	}
	return Probe{Up: true, StatusRead: true, Held: d.held, Fleet: d.fleet}
}

// Events serves the fake's channel while it is up.
func (d *FakeDaemon) Events(ctx context.Context) (<-chan api.Event, error) {
	if !d.up.Load() {
		return nil, errors.New("daemon unreachable")
	}
	out := make(chan api.Event)
	go func() {
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case e := <-d.events:
				select {
				case out <- e:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}
