package simhost

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/controller"
	"github.com/bot-bottle/bottlecap/internal/retry"
	"github.com/bot-bottle/bottlecap/store"
)

// Recorder is a controller.Enforcer that touches no container. After a
// short delay (so the pending state shows) it records in the audit log
// what a real enforcer would have done and finishes the job as done.
type Recorder struct {
	db     *store.DB
	delay  time.Duration
	ctx    context.Context // ended by Stop
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

var _ controller.Enforcer = (*Recorder)(nil)

// NewRecorder returns a Recorder that writes to db's audit log and
// finishes each job after delay.
func NewRecorder(db *store.DB, delay time.Duration) *Recorder {
	ctx, cancel := context.WithCancel(context.Background())
	return &Recorder{db: db, delay: delay, ctx: ctx, cancel: cancel}
}

// Submit records "would …" and finishes the job, without blocking.
func (e *Recorder) Submit(job controller.Job) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		if retry.Sleep(e.ctx, e.delay) != nil {
			return // shutting down: the job stays pending in a ledger about to be removed
		}
		a := job.Action
		detail := fmt.Sprintf("would %s %s (%s #%d): the demo touches no containers", verbs[a.Kind], a.Bottle, a.Kind, a.ID)
		if _, err := e.db.AppendAudit(context.Background(), budget.AuditEntry{Kind: "demo", Bottle: a.Bottle, Detail: detail}); err != nil {
			job.Finished(1, fmt.Errorf("record the demo action: %w", err))
			return
		}
		job.Finished(1, nil)
	}()
}

// verbs say what each action would have done.
var verbs = map[budget.ActionKind]string{
	budget.ActCutoff:  "cut off",
	budget.ActPause:   "pause (the agent, not its sidecars)",
	budget.ActFreeze:  "freeze (commit, then stop)",
	budget.ActKill:    "kill (stop and remove)",
	budget.ActRestore: "restore",
}

// Stop abandons jobs still waiting and waits for the ones running.
func (e *Recorder) Stop() {
	e.cancel()
	e.wg.Wait()
}
