package store_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/store"
)

// gate is a before-commit hook that holds the first batch open until the
// test releases it, and counts commits.
type gate struct {
	entered chan struct{}
	release chan struct{}
	commits atomic.Int64
	fail    error
}

func newGate() *gate {
	return &gate{entered: make(chan struct{}), release: make(chan struct{})}
}

func (g *gate) hook() error {
	if g.commits.Add(1) == 1 {
		close(g.entered)
		<-g.release
	}
	return g.fail
}

// waitQueued spins (yielding) until n submissions wait behind the held batch.
func waitQueued(w *store.Writer, n int) {
	for w.Queued() < n {
		runtime.Gosched()
	}
}

// committed reports whether id is visible to a separate read-only
// connection, i.e. whether its transaction has committed.
func committed(t *testing.T, ro *store.DB, bottle, id string) bool {
	t.Helper()
	recent, err := ro.RecentReports(context.Background(), bottle, 0)
	if err != nil {
		t.Errorf("RecentReports: %v", err)
	}
	for _, r := range recent {
		if r.ID == id {
			return true
		}
	}
	return false
}

func TestWriterManySubmittersEachGetCommittedResults(t *testing.T) {
	ctx := context.Background()
	db, path := openTemp(t)
	ro, err := store.OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	w := store.NewWriter(db)

	const submitters, each = 64, 10
	var wg sync.WaitGroup
	var dups atomic.Int64
	for g := 0; g < submitters; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bottle := fmt.Sprintf("b%d", g%8)
			for i := 0; i < each; i++ {
				id := fmt.Sprintf("msg_%d_%d", g%32, i) // every id submitted by two goroutines
				res, err := w.Submit(ctx, []budget.Report{report(id, bottle, "a", "claude", 1)})
				if err != nil || len(res) != 1 {
					t.Errorf("Submit(%s) = %v, %v", id, res, err)
					return
				}
				if res[0].Duplicate {
					dups.Add(1)
				}
				if !committed(t, ro, bottle, id) {
					t.Errorf("Submit(%s) returned before its report was committed", id)
				}
			}
		}()
	}
	wg.Wait()
	w.Close()

	if got, want := dups.Load(), int64(submitters*each/2); got != want {
		t.Errorf("%d duplicates, want %d", got, want)
	}
	if got := readCount(t, ro); got != submitters*each/2 {
		t.Errorf("%d reports counted, want %d", got, submitters*each/2)
	}
}

// TestWriterAnswersOnlyAfterCommit holds the first batch just before its
// commit while the other submitters queue behind it: none of them may have
// returned, nothing is visible to a reader, and the queued submissions then
// go into a single second transaction.
func TestWriterAnswersOnlyAfterCommit(t *testing.T) {
	ctx := context.Background()
	db, path := openTemp(t)
	ro, err := store.OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	g := newGate()
	w := store.NewWriter(db, store.WithBeforeCommit(g.hook))
	defer w.Close()

	const n = 16
	var returned atomic.Int64
	var wg sync.WaitGroup
	submit := func(i int) {
		defer wg.Done()
		id := fmt.Sprintf("msg_%d", i)
		_, err := w.Submit(ctx, []budget.Report{report(id, "b1", "a", "claude", 1)})
		returned.Add(1)
		if err != nil {
			t.Errorf("Submit(%s): %v", id, err)
		} else if !committed(t, ro, "b1", id) {
			t.Errorf("Submit(%s) returned before its report was committed", id)
		}
	}
	wg.Add(n)
	go submit(0)
	<-g.entered
	for i := 1; i < n; i++ {
		go submit(i)
	}
	waitQueued(w, n-1)

	if got := returned.Load(); got != 0 {
		t.Errorf("%d Submit calls returned while their batch was uncommitted", got)
	}
	if got := readCount(t, ro); got != 0 {
		t.Errorf("a reader sees %d reports before the commit", got)
	}
	close(g.release)
	wg.Wait()
	if got := g.commits.Load(); got != 2 {
		t.Errorf("%d transactions, want 2 (the held one, then all queued ones together)", got)
	}
}

func TestWriterCommitErrorReachesEverySubmitter(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	g := newGate()
	g.fail = fmt.Errorf("disk on fire: %w", budget.ErrUnavailable)
	w := store.NewWriter(db, store.WithBeforeCommit(g.hook))
	defer w.Close()

	const n = 8
	errs := make(chan error, n)
	go func() {
		_, err := w.Submit(ctx, []budget.Report{report("msg_0", "b1", "a", "claude", 1)})
		errs <- err
	}()
	<-g.entered
	for i := 1; i < n; i++ {
		go func() {
			_, err := w.Submit(ctx, []budget.Report{report(fmt.Sprintf("msg_%d", i), "b1", "a", "claude", 1)})
			errs <- err
		}()
	}
	waitQueued(w, n-1)
	close(g.release)
	for i := 0; i < n; i++ {
		if err := <-errs; !errors.Is(err, budget.ErrUnavailable) {
			t.Errorf("Submit: got %v, want ErrUnavailable", err)
		}
	}
	if got := readCount(t, db); got != 0 {
		t.Errorf("%d reports stored after failed commits, want 0", got)
	}
}

func TestWriterSubmitCancelledWhileQueued(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	g := newGate()
	w := store.NewWriter(db, store.WithBeforeCommit(g.hook))

	firstErr := make(chan error, 1)
	go func() {
		_, err := w.Submit(ctx, []budget.Report{report("msg_held", "b1", "a", "claude", 1)})
		firstErr <- err
	}()
	<-g.entered
	cctx, cancel := context.WithCancel(ctx)
	queuedErr := make(chan error, 1)
	go func() {
		_, err := w.Submit(cctx, []budget.Report{report("msg_cancelled", "b1", "a", "claude", 1)})
		queuedErr <- err
	}()
	waitQueued(w, 1)
	cancel()
	if err := <-queuedErr; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Submit: got %v, want context.Canceled", err)
	}
	close(g.release)
	if err := <-firstErr; err != nil {
		t.Errorf("held Submit: %v", err)
	}
	w.Close()
	recent, _ := db.RecentReports(ctx, "b1", 0)
	if len(recent) != 1 || recent[0].ID != "msg_held" {
		t.Errorf("stored %+v, want only msg_held", recent)
	}
}

func TestWriterCloseDrainsTheQueue(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	g := newGate()
	w := store.NewWriter(db, store.WithBeforeCommit(g.hook))

	const n = 5
	errs := make(chan error, n)
	submit := func(i int) {
		_, err := w.Submit(ctx, []budget.Report{report(fmt.Sprintf("msg_%d", i), "b1", "a", "claude", 1)})
		errs <- err
	}
	go submit(0)
	<-g.entered
	for i := 1; i < n; i++ {
		go submit(i)
	}
	waitQueued(w, n-1)
	closed := make(chan struct{})
	go func() { w.Close(); close(closed) }()
	close(g.release)
	<-closed
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			t.Errorf("Submit queued before Close: %v", err)
		}
	}
	if _, err := w.Submit(ctx, []budget.Report{report("late", "b1", "a", "claude", 1)}); !errors.Is(err, store.ErrWriterClosed) {
		t.Errorf("Submit after Close: got %v, want ErrWriterClosed", err)
	}
	if got := readCount(t, db); got != n {
		t.Errorf("%d reports stored, want %d", got, n)
	}
}

func TestWriterSubmissionLargerThanTheCapCommitsWhole(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	w := store.NewWriter(db, store.WithMaxBatch(2))
	defer w.Close()
	var reports []budget.Report
	for i := 0; i < 5; i++ {
		reports = append(reports, report(fmt.Sprintf("msg_%d", i%4), "b1", "a", "claude", 1))
	}
	res, err := w.Submit(ctx, reports)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := dupFlags(res), "....D"; got != want {
		t.Errorf("duplicates = %s, want %s", got, want)
	}
	if _, err := w.Submit(ctx, []budget.Report{{ID: "x"}}); !errors.Is(err, budget.ErrInvalid) {
		t.Errorf("invalid Submit: got %v, want ErrInvalid", err)
	}
}

// TestWriterCommitsNewBottlesWithTheirReports: bottles submitted with
// reports are stored in the reports' transaction — a failed commit leaves
// neither, a successful one both — and a bottle already stored keeps its
// registration.
func TestWriterCommitsNewBottlesWithTheirReports(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	fail := fmt.Errorf("disk on fire: %w", budget.ErrUnavailable)
	var failing atomic.Bool
	failing.Store(true)
	w := store.NewWriter(db, store.WithBeforeCommit(func() error {
		if failing.Load() {
			return fail
		}
		return nil
	}))
	defer w.Close()
	stray := budget.Bottle{Slug: "stray", Agent: "a", Implicit: true}
	if err := db.PutBottle(ctx, budget.Bottle{Slug: "known", Agent: "impl", Budget: budget.Limits{"claude": budget.Lifetime(9)}}); err != nil {
		t.Fatal(err)
	}
	batch := []budget.Report{report("m1", "stray", "a", "claude", 1), report("m2", "known", "a", "claude", 1)}
	implicit := []budget.Bottle{stray, {Slug: "known", Implicit: true}}

	if _, err := w.SubmitWith(ctx, batch, implicit); !errors.Is(err, budget.ErrUnavailable) {
		t.Fatalf("failed commit: got %v, want ErrUnavailable", err)
	}
	if _, err := db.Bottle(ctx, "stray"); !errors.Is(err, budget.ErrNotFound) {
		t.Errorf("after a failed commit got bottle stray (%v), want none", err)
	}
	if got := readCount(t, db); got != 0 {
		t.Errorf("after a failed commit got %d reports, want 0", got)
	}

	failing.Store(false)
	if _, err := w.SubmitWith(ctx, batch, implicit); err != nil {
		t.Fatal(err)
	}
	got, err := db.Bottle(ctx, "stray")
	if err != nil || !got.Implicit || got.State != budget.Active {
		t.Errorf("after the commit got stray %+v (%v), want an active implicit bottle", got, err)
	}
	if got := readCount(t, db); got != 2 {
		t.Errorf("after the commit got %d reports, want 2", got)
	}
	known, err := db.Bottle(ctx, "known")
	if err != nil || known.Implicit || known.Agent != "impl" || known.Budget["claude"].String() != "9" {
		t.Errorf("got known %+v (%v), want its registration untouched", known, err)
	}
}
