package controller_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/controller"
)

// These tests drive controller.Core directly over fakeLedger and
// fakeIngester: every transition of the budget state machine, and the
// interleavings the core must survive, with no socket and no SQLite.

// heldEnforcer keeps every job it is given; the test finishes them.
type heldEnforcer struct {
	mu   sync.Mutex
	jobs []controller.Job
}

func (h *heldEnforcer) Submit(j controller.Job) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.jobs = append(h.jobs, j)
}

func (h *heldEnforcer) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.jobs)
}

// job is the i-th job submitted (0-based), once it has been.
func (h *heldEnforcer) job(t *testing.T, i int) controller.Job {
	t.Helper()
	eventually(t, fmt.Sprintf("job %d submitted", i), func() bool { return h.count() > i })
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.jobs[i]
}

// rig is a core over a fake ledger and a held enforcer.
type rig struct {
	t    *testing.T
	f    *fakeLedger
	enf  *heldEnforcer
	core *controller.Core
}

func newRig(t *testing.T, f *fakeLedger) *rig {
	t.Helper()
	enf := &heldEnforcer{}
	c, err := controller.NewCore(context.Background(), controller.Config{Ledger: f, Ingester: &fakeIngester{f: f}, Enforcer: enf})
	if err != nil {
		t.Fatalf("NewCore: %v", err)
	}
	return &rig{t: t, f: f, enf: enf, core: c}
}

// ingest commits one report of tokens input tokens for agent a on claude.
func (r *rig) ingest(id, bottle string, tokens int64) api.IngestReply {
	r.t.Helper()
	rep := budget.Report{ID: id, Bottle: bottle, Agent: "a", Provider: "claude", Usage: budget.Usage{Input: tokens}, Complete: true, TS: time.Now()}
	if err := r.core.Weigh(&rep); err != nil {
		r.t.Fatalf("weigh %s: %v", id, err)
	}
	reply, err := r.core.Ingest(context.Background(), []budget.Report{rep}, nil)
	if err != nil {
		r.t.Fatalf("ingest %s: %v", id, err)
	}
	return reply
}

func (r *rig) register(slug string, req api.BottleRequest) {
	r.t.Helper()
	if _, err := r.core.Register(context.Background(), slug, req); err != nil {
		r.t.Fatalf("register %s: %v", slug, err)
	}
}

// states are a bottle's state in the book and in the ledger.
func (r *rig) states(slug string) (book, ledger budget.State) {
	r.t.Helper()
	v, err := r.core.Bottle(slug)
	if err != nil {
		r.t.Fatalf("bottle %s: %v", slug, err)
	}
	bottles, _, _ := r.f.snapshot()
	return v.State, bottles[slug].State
}

// wantState checks a bottle's state in the book and the ledger.
func (r *rig) wantState(slug string, want budget.State) {
	r.t.Helper()
	if book, ledger := r.states(slug); book != want || ledger != want {
		r.t.Errorf("bottle %s: book %s, ledger %s; want %s in both", slug, book, ledger, want)
	}
}

func (r *rig) wantJournal(want ...string) {
	r.t.Helper()
	if got := journaled(r.f); !slices.Equal(got, want) {
		r.t.Errorf("journal %q, want %q", got, want)
	}
}

func claude(n int64) budget.Limits { return budget.Limits{"claude": budget.Lifetime(n)} }

// TestCoreRegister: a registration is stored in the ledger and the book;
// a re-registration merges over it and never changes the state; one the
// book refuses (a parent cycle) or the ledger refuses changes nothing.
func TestCoreRegister(t *testing.T) {
	r := newRig(t, newFakeLedger())
	r.register("b1", api.BottleRequest{Agent: "a", Budget: claude(100)})
	r.register("b1", api.BottleRequest{Name: "first", Budget: budget.Limits{"codex": budget.Lifetime(50)}})
	v, err := r.core.Bottle("b1")
	if err != nil {
		t.Fatal(err)
	}
	if v.Agent != "a" || v.Name != "first" || v.Budget["claude"].String() != "100" || v.Budget["codex"].String() != "50" || v.State != budget.Active {
		t.Errorf("merged registration %+v, want agent a, name first, claude 100 and codex 50, active", v.Bottle)
	}
	bottles, _, audit := r.f.snapshot()
	if got := bottles["b1"]; got.Name != "first" || got.Budget["codex"].String() != "50" {
		t.Errorf("ledger holds %+v, want the merged registration", got)
	}
	if len(audit) != 2 || audit[1].Kind != "bottle" {
		t.Errorf("audit %+v, want one bottle entry per registration", audit)
	}

	r.register("p", api.BottleRequest{Parent: "b1"})
	if _, err := r.core.Register(context.Background(), "b1", api.BottleRequest{Parent: "p"}); !errors.Is(err, budget.ErrConflict) {
		t.Errorf("a parent cycle: got %v, want ErrConflict", err)
	}
	if v, _ := r.core.Bottle("b1"); v.Parent != "" {
		t.Errorf("a refused cycle left parent %q in the book", v.Parent)
	}

	refused := errors.New("disk full")
	r.f.fail = func(m string) error {
		if m == "PutBottle" {
			return refused
		}
		return nil
	}
	if _, err := r.core.Register(context.Background(), "b1", api.BottleRequest{Name: "second"}); !errors.Is(err, refused) {
		t.Errorf("a refused store: got %v, want %v", err, refused)
	}
	if _, err := r.core.Register(context.Background(), "new", api.BottleRequest{}); !errors.Is(err, refused) {
		t.Errorf("a refused store: got %v, want %v", err, refused)
	}
	if v, _ := r.core.Bottle("b1"); v.Name != "first" {
		t.Errorf("a registration the ledger refused left name %q in the book, want first", v.Name)
	}
	if _, err := r.core.Bottle("new"); !errors.Is(err, budget.ErrNotFound) {
		t.Errorf("a new bottle the ledger refused is in the book: %v", err)
	}
}

// TestCoreCrossingToDone: a report crossing a bottle's budget claims it
// (pending in the book and the ledger), journals a cutoff pending, hands
// it to the enforcer, and the enforcer's success journals it done and
// leaves the bottle cut off; the gate denies from the crossing on.
func TestCoreCrossingToDone(t *testing.T) {
	r := newRig(t, newFakeLedger())
	r.register("b1", api.BottleRequest{Agent: "a", Budget: claude(100)})
	if reply := r.ingest("r1", "b1", 99); reply.Accepted != 1 || !reply.Verdicts[0].Allowed {
		t.Fatalf("under budget: %+v", reply)
	}
	r.wantJournal()
	reply := r.ingest("r2", "b1", 1)
	if reply.Verdicts[0].Allowed {
		t.Errorf("the crossing's verdict allows: %+v", reply.Verdicts[0])
	}
	r.wantState("b1", budget.Pending)
	r.wantJournal("cutoff b1 pending")
	job := r.enf.job(t, 0)
	if job.Action.Kind != budget.ActCutoff || job.Action.Bottle != "b1" {
		t.Errorf("enforcer got %+v, want the cutoff of b1", job.Action)
	}
	if dup := r.ingest("r2", "b1", 1); dup.Duplicates != 1 || dup.Accepted != 0 {
		t.Errorf("a retried report: %+v, want one duplicate", dup)
	}
	job.Finished(1, nil)
	r.wantState("b1", budget.CutOff)
	r.wantJournal("cutoff b1 done")
	if v := r.core.Verdict("b1", "a", "claude", 0); v.Allowed {
		t.Errorf("verdict after the cutoff allows: %+v", v)
	}
	if r.enf.count() != 1 {
		t.Errorf("enforcer got %d jobs, want 1", r.enf.count())
	}
}

// TestCoreCrossingFails: an action the enforcer gives up on is journaled
// failed, and the bottle stays pending (the gate keeps denying) with the
// error as its reason.
func TestCoreCrossingFails(t *testing.T) {
	r := newRig(t, newFakeLedger())
	r.register("b1", api.BottleRequest{Agent: "a", Budget: claude(100)})
	r.ingest("r1", "b1", 100)
	job := r.enf.job(t, 0)
	job.Attempted(1, errors.New("engine down"))
	if _, acts, _ := r.f.snapshot(); acts[0].Attempts != 1 || acts[0].LastError != "engine down" {
		t.Errorf("attempt journaled as %+v", acts[0])
	}
	job.Finished(2, errors.New("engine down"))
	r.wantJournal("cutoff b1 failed")
	r.wantState("b1", budget.Pending)
	if v, _ := r.core.Bottle("b1"); v.StateReason != "cutoff failed: engine down" {
		t.Errorf("reason %q, want the error", v.StateReason)
	}
}

// TestCoreWarn: passing the warn threshold marks the bottle warned (book
// and ledger) and audits one warn per budget, however many reports pass it.
func TestCoreWarn(t *testing.T) {
	r := newRig(t, newFakeLedger())
	r.register("b1", api.BottleRequest{Agent: "a", Budget: claude(100)})
	r.ingest("r1", "b1", 80)
	r.ingest("r2", "b1", 1)
	r.wantState("b1", budget.Warned)
	r.wantJournal()
	_, _, audit := r.f.snapshot()
	var warns int
	for _, e := range audit {
		if e.Kind == "warn" {
			warns++
		}
	}
	if warns != 1 {
		t.Errorf("%d warn audit entries, want 1: %+v", warns, audit)
	}
}

// TestCoreSetLimits: a limit lowered below usage acts at once; raised
// above it, it restores the bottle it cut off.
func TestCoreSetLimits(t *testing.T) {
	r := newRig(t, newFakeLedger())
	r.register("b1", api.BottleRequest{Agent: "a"})
	r.ingest("r1", "b1", 50)
	got, err := r.core.SetLimits(context.Background(), "bottle", "b1", budget.Limits{"claude": budget.Lifetime(40)})
	if err != nil || got.Limits["claude"].String() != "40" {
		t.Fatalf("SetLimits: %+v, %v", got, err)
	}
	r.wantJournal("cutoff b1 pending")
	r.enf.job(t, 0).Finished(1, nil)
	r.wantState("b1", budget.CutOff)
	if _, err := r.core.SetLimits(context.Background(), "bottle", "b1", budget.Limits{"claude": budget.Lifetime(60)}); err != nil {
		t.Fatal(err)
	}
	r.wantJournal("cutoff b1 done", "restore b1 pending")
	r.enf.job(t, 1).Finished(1, nil)
	r.wantState("b1", budget.Active)

	// b2 has no budget of its own: the global one governs it.
	r.register("b2", api.BottleRequest{Agent: "a"})
	r.ingest("r2", "b2", 20)
	if _, err := r.core.SetLimits(context.Background(), "global", "-", budget.Limits{"claude": budget.Lifetime(10)}); err != nil {
		t.Fatal(err)
	}
	r.wantJournal("cutoff b1 done", "restore b1 done", "cutoff b2 pending")
	if _, err := r.core.SetLimits(context.Background(), "agent", "b1", budget.Limits{"claude": budget.Lifetime(1)}); !errors.Is(err, budget.ErrInvalid) {
		t.Errorf("an agent scope without an agent: %v, want ErrInvalid", err)
	}
}

// TestCoreOperatorActions: an operator's action is claimed, journaled and
// run; one that makes no sense in the bottle's state is refused and
// changes nothing; one the journal refuses leaves the bottle as it was.
func TestCoreOperatorActions(t *testing.T) {
	r := newRig(t, newFakeLedger())
	ctx := context.Background()
	r.register("b1", api.BottleRequest{Agent: "a"})
	if _, err := r.core.Act(ctx, "nobody", budget.ActFreeze, "why"); !errors.Is(err, budget.ErrNotFound) {
		t.Errorf("unknown bottle: %v, want ErrNotFound", err)
	}
	if _, err := r.core.Act(ctx, "b1", budget.ActRestore, "why"); !errors.Is(err, budget.ErrConflict) {
		t.Errorf("restore of an active bottle: %v, want ErrConflict", err)
	}
	r.f.fail = func(m string) error {
		if m == "CreateAction" {
			return errors.New("journal full")
		}
		return nil
	}
	if _, err := r.core.Act(ctx, "b1", budget.ActCutoff, "why"); err == nil {
		t.Error("an action the journal refused was accepted")
	}
	r.wantState("b1", budget.Active)
	r.f.fail = nil

	act, err := r.core.Act(ctx, "b1", budget.ActCutoff, "by operator")
	if err != nil || act.ID == 0 || !act.Operator {
		t.Fatalf("Act: %+v, %v", act, err)
	}
	r.wantState("b1", budget.Pending)
	r.enf.job(t, 0).Finished(1, nil)
	r.wantState("b1", budget.CutOff)
	if _, err := r.core.Act(ctx, "b1", budget.ActRestore, "by operator"); err != nil {
		t.Fatal(err)
	}
	r.enf.job(t, 1).Finished(1, nil)
	r.wantState("b1", budget.Active)
	if _, err := r.core.Act(ctx, "b1", budget.ActKill, "by operator"); err != nil {
		t.Fatal(err)
	}
	r.enf.job(t, 2).Finished(1, nil)
	r.wantState("b1", budget.Killed)
	if _, err := r.core.Act(ctx, "b1", budget.ActFreeze, "by operator"); !errors.Is(err, budget.ErrConflict) {
		t.Errorf("an action on a killed bottle: %v, want ErrConflict", err)
	}
	r.wantJournal("cutoff b1 done", "restore b1 done", "kill b1 done")
	r.wantState("b1", budget.Killed)
}

// TestCoreOperatorRestoreIsExempt: a bottle an operator restored over an
// exhausted budget is not cut off again by the next report under the same
// limits.
func TestCoreOperatorRestoreIsExempt(t *testing.T) {
	r := newRig(t, newFakeLedger())
	r.register("b1", api.BottleRequest{Agent: "a", Budget: claude(100)})
	r.ingest("r1", "b1", 100)
	r.enf.job(t, 0).Finished(1, nil)
	if _, err := r.core.Act(context.Background(), "b1", budget.ActRestore, "let it finish"); err != nil {
		t.Fatal(err)
	}
	r.enf.job(t, 1).Finished(1, nil)
	r.ingest("r2", "b1", 10)
	r.wantState("b1", budget.Active)
	r.wantJournal("cutoff b1 done", "restore b1 done")
}

// TestCoreReconcileAfterCrash: the daemon crashed between a commit and
// its journal: the ledger holds usage past a budget and no action. The
// core acts on it at start, hands it to the enforcer and records its
// outcome; a bottle an operator restored is left alone, as before the
// crash.
func TestCoreReconcileAfterCrash(t *testing.T) {
	f := seeded([]budget.Bottle{
		{Slug: "crashed", Agent: "a", Budget: budget.Limits{"claude": budget.Lifetime(100)}, State: budget.Active},
		{Slug: "restored", Agent: "a", Budget: budget.Limits{"claude": budget.Lifetime(100)}, State: budget.Active, ByOperator: true, StateReason: "restore done"},
	}, nil, []budget.Total{
		{Bottle: "crashed", Agent: "a", Provider: "claude", Counted: 120},
		{Bottle: "restored", Agent: "a", Provider: "claude", Counted: 120},
	})
	r := newRig(t, f)
	r.wantJournal("cutoff crashed pending")
	r.wantState("crashed", budget.Pending)
	r.wantState("restored", budget.Active)
	job := r.enf.job(t, 0)
	if job.Action.Bottle != "crashed" {
		t.Fatalf("enforcer got %+v, want the cutoff of crashed", job.Action)
	}
	job.Finished(1, nil)
	r.wantState("crashed", budget.CutOff)
	r.wantJournal("cutoff crashed done")
}

// TestCoreRegisterDuringFinish is the putBottle/finished interleaving: a
// registration is held in its ledger write while the bottle's cutoff
// finishes in memory. The registration was read before the cutoff, so
// its write holds the older state; the finish's save must come after it,
// and the ledger end with the state memory has.
func TestCoreRegisterDuringFinish(t *testing.T) {
	f := newFakeLedger()
	r := newRig(t, f)
	r.register("b1", api.BottleRequest{Agent: "a", Budget: claude(100)})
	r.ingest("r1", "b1", 100)
	job := r.enf.job(t, 0)

	var armed atomic.Bool
	reached, release := make(chan struct{}), make(chan struct{})
	f.hook = func(m string) {
		if m == "PutBottle" && armed.CompareAndSwap(true, false) {
			close(reached)
			<-release
		}
	}
	armed.Store(true)
	registered := make(chan error, 1)
	go func() {
		_, err := r.core.Register(context.Background(), "b1", api.BottleRequest{Name: "renamed"})
		registered <- err
	}()
	<-reached
	finished := make(chan struct{})
	go func() {
		job.Finished(1, nil)
		close(finished)
	}()
	eventually(t, "the cutoff done in memory", func() bool {
		v, _ := r.core.Bottle("b1")
		return v.State == budget.CutOff
	})
	close(release)
	if err := <-registered; err != nil {
		t.Fatal(err)
	}
	<-finished
	r.wantState("b1", budget.CutOff)
	bottles, _, _ := f.snapshot()
	if bottles["b1"].Name != "renamed" {
		t.Errorf("ledger lost the registration: %+v", bottles["b1"])
	}
}

// TestCoreConcurrentRegistrations: registrations of one bottle, each
// adding its own agent's budget at once, all end up in the book and the
// ledger: none reads the bottle before another's write and overwrites it.
// (Run with -race: the book's maps are never edited outside the lock.)
func TestCoreConcurrentRegistrations(t *testing.T) {
	r := newRig(t, newFakeLedger())
	r.register("b1", api.BottleRequest{Agent: "a"})
	const n = 16
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			req := api.BottleRequest{AgentBudgets: map[string]budget.Limits{fmt.Sprintf("agent%d", i): claude(int64(i + 1))}}
			if _, err := r.core.Register(context.Background(), "b1", req); err != nil {
				t.Error(err)
			}
		})
		wg.Go(func() { r.core.Bottles() })
	}
	wg.Wait()
	v, _ := r.core.Bottle("b1")
	bottles, _, _ := r.f.snapshot()
	for i := range n {
		agent := fmt.Sprintf("agent%d", i)
		if v.AgentBudgets[agent]["claude"].String() != strconv.Itoa(i+1) {
			t.Errorf("book lost %s's budget: %v", agent, v.AgentBudgets)
		}
		if bottles["b1"].AgentBudgets[agent]["claude"].String() != strconv.Itoa(i+1) {
			t.Errorf("ledger lost %s's budget: %v", agent, bottles["b1"].AgentBudgets)
		}
	}
}

// TestCoreOperatorActionVersusCrossing: an operator's freeze is accepted
// and held in its journal write while a report crosses the bottle's
// budget. The operator's claim came first, so the crossing finds the
// bottle claimed and acts no second time: one action, the operator's.
func TestCoreOperatorActionVersusCrossing(t *testing.T) {
	f := newFakeLedger()
	r := newRig(t, f)
	r.register("b1", api.BottleRequest{Agent: "a", Budget: claude(100)})
	r.ingest("r1", "b1", 99)

	var armed atomic.Bool
	reached, release := make(chan struct{}), make(chan struct{})
	f.hook = func(m string) {
		if m == "CreateAction" && armed.CompareAndSwap(true, false) {
			close(reached)
			<-release
		}
	}
	armed.Store(true)
	acted := make(chan error, 1)
	go func() {
		_, err := r.core.Act(context.Background(), "b1", budget.ActFreeze, "by operator")
		acted <- err
	}()
	<-reached
	if reply := r.ingest("r2", "b1", 5); reply.Verdicts[0].Allowed {
		t.Errorf("the crossing's verdict allows a claimed bottle: %+v", reply.Verdicts[0])
	}
	close(release)
	if err := <-acted; err != nil {
		t.Fatal(err)
	}
	r.wantJournal("freeze b1 pending")
	r.enf.job(t, 0).Finished(1, nil)
	r.wantState("b1", budget.Frozen)
	if r.enf.count() != 1 {
		t.Errorf("enforcer got %d jobs, want the freeze alone", r.enf.count())
	}
}

// TestCoreActionsAndCrossingsRace: operators and reports act on the same
// bottles at once, under the race detector. Whatever the order, a killed
// bottle is never acted on again, and each bottle's state in the ledger
// is the book's.
func TestCoreActionsAndCrossingsRace(t *testing.T) {
	r := newRig(t, newFakeLedger())
	slugs := []string{"b1", "b2", "b3"}
	for _, s := range slugs {
		r.register(s, api.BottleRequest{Agent: "a", Budget: claude(100)})
	}
	var wg sync.WaitGroup
	for i, s := range slugs {
		wg.Go(func() {
			for j := range 20 {
				rep := budget.Report{ID: fmt.Sprintf("%s-%d", s, j), Bottle: s, Agent: "a", Provider: "claude", Usage: budget.Usage{Input: 10}, Complete: true, TS: time.Now()}
				if err := r.core.Weigh(&rep); err != nil {
					t.Error(err)
					return
				}
				if _, err := r.core.Ingest(context.Background(), []budget.Report{rep}, nil); err != nil {
					t.Error(err)
				}
			}
		})
		wg.Go(func() {
			kinds := []budget.ActionKind{budget.ActFreeze, budget.ActCutoff, budget.ActKill}
			_, _ = r.core.Act(context.Background(), s, kinds[i], "by operator")
		})
	}
	wg.Wait()
	// Finish every job in order, as the runner does per bottle.
	for i := 0; i < r.enf.count(); i++ {
		r.enf.job(t, i).Finished(1, nil)
	}
	r.wantState("b3", budget.Killed)
	if _, err := r.core.Act(context.Background(), "b3", budget.ActRestore, "by operator"); !errors.Is(err, budget.ErrConflict) {
		t.Errorf("restore of a killed bottle: %v, want ErrConflict", err)
	}
	for _, s := range slugs {
		book, ledger := r.states(s)
		if book != ledger || !book.Blocked() {
			t.Errorf("bottle %s: book %s, ledger %s; want one blocked state", s, book, ledger)
		}
	}
}
