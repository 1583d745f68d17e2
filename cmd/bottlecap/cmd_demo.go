package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/client"
	"github.com/bot-bottle/bottlecap/controller"
	"github.com/bot-bottle/bottlecap/daemon"
	"github.com/bot-bottle/bottlecap/settings"
	"github.com/bot-bottle/bottlecap/store"
	"github.com/bot-bottle/bottlecap/tui"
)

// demoBanner is what the dashboard's header says for the whole demo.
const demoBanner = "DEMO: simulated agents, no containers are touched"

// demoSettings are the demo host's settings: a global budget, a default
// for reviewer agents and cost weights for cached input.
const demoSettings = `budget:
  claude: 3M
  codex: 1M
warn_at: 80%
agents:
  reviewer:
    budget:
      codex: 150k
weights:
  claude:
    cache_read: 0.1
  codex:
    cache_read: 0.1
`

// demoBottle is one simulated bottle: how it registers and how often its
// sidecar reports a response (at --speed 1).
type demoBottle struct {
	slug, parent, agent, provider string
	budget                        map[string]api.Amount
	shutdown                      string
	every                         time.Duration
	register                      bool
}

// demoBottles are a planner with two implementers and a reviewer below it,
// plus a stray bottle nobody registered (the global budget governs it).
// Budgets are sized so that at --speed 1 the first warning comes within
// about 15 seconds and the first cutoff within about half a minute.
var demoBottles = []demoBottle{
	{slug: "planner-7f3a2", agent: "planner", provider: "claude", every: 3 * time.Second, register: true,
		budget: map[string]api.Amount{"claude": 500_000, "codex": 400_000}},
	{slug: "implementer-a1c9e", parent: "planner-7f3a2", agent: "implementer", provider: "claude", every: 2 * time.Second, register: true,
		budget: map[string]api.Amount{"claude": 200_000}},
	{slug: "implementer-b4d07", parent: "planner-7f3a2", agent: "implementer", provider: "claude", every: 1500 * time.Millisecond, register: true,
		budget: map[string]api.Amount{"claude": 100_000}, shutdown: "freeze"},
	{slug: "reviewer-e2f18", parent: "planner-7f3a2", agent: "reviewer", provider: "codex", every: 4 * time.Second, register: true},
	{slug: "stray-9c1d0", agent: "coder", provider: "codex", every: 5 * time.Second},
}

// runDemo implements `bottlecap demo`: a daemon on a temporary home with
// simulated sidecars reporting realistic usage, and the dashboard on top.
func (m *Main) runDemo(ctx context.Context, args []string) error {
	fs := m.flags("demo")
	speed := fs.Float64("speed", 1, "how many times faster than real agents the simulated sidecars report")
	noDash := fs.Bool("no-dash", false, "run without the dashboard, printing the audit log")
	duration := fs.Duration("duration", time.Minute, "with --no-dash: how long to run")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 || *speed <= 0 {
		fmt.Fprintln(m.Stderr, "usage: bottlecap demo [--speed X] [--no-dash [--duration D]]")
		return errUsage
	}
	home, err := os.MkdirTemp("", "bcdemo") // short: unix socket paths are limited
	if err != nil {
		return err
	}
	defer func() {
		os.RemoveAll(home)
		fmt.Fprintf(m.Stdout, "demo: removed %s\n", home)
	}()
	fmt.Fprintf(m.Stdout, "bottlecap demo: a daemon on the temporary home %s\n"+
		"with simulated sidecars reporting usage for %d bottles. It touches no containers:\n"+
		"its enforcer only records in the audit log what it would do (\"would cut off …\").\n",
		home, len(demoBottles))
	d, err := startDemo(ctx, home, *speed)
	if err != nil {
		return err
	}
	defer d.stop()
	if *noDash {
		return d.tail(ctx, m.Stdout, *duration)
	}
	return m.demoDash(ctx, d)
}

// demoDash shows the intro for a moment, then runs the dashboard over the
// demo's home exactly as `bottlecap dash` would.
func (m *Main) demoDash(ctx context.Context, d *demo) error {
	fmt.Fprintln(m.Stdout, "Starting the dashboard (q quits and removes the temporary home)…")
	if !sleepCtx(ctx, 3*time.Second) {
		return nil
	}
	dash, err := openDash(ctx, filepath.Join(d.home, "bot-bottle.db"), filepath.Join(d.home, "settings.yml"), d.sock)
	if err != nil {
		return err
	}
	defer dash.Close()
	o := dash.Options()
	o.Banner, o.Refresh, o.Input, o.Output = demoBanner, time.Second, m.Stdin, m.Stdout
	return tui.Run(ctx, o)
}

// demo is a running demo: an in-process daemon over a real ledger and the
// simulated sidecars.
type demo struct {
	home, sock string
	d          *daemon.Daemon
	db         *store.DB
	enf        *demoEnforcer
	cancel     context.CancelFunc
	sims       sync.WaitGroup
	logFile    *os.File
}

// startDemo starts the daemon on home, registers the bottles and starts
// their sidecars.
func startDemo(ctx context.Context, home string, speed float64) (*demo, error) {
	d, err := startDemoDaemon(ctx, home, time.Duration(float64(time.Second)/speed))
	if err != nil {
		return nil, err
	}
	if err := d.populate(ctx, speed); err != nil {
		d.stop()
		return nil, err
	}
	return d, nil
}

// startDemoDaemon runs a real daemon in-process on home: the demo's
// settings, a real ledger and socket, and the demo enforcer, which finishes
// each action after delay. It logs to home/bottlecap.log, never to the
// terminal.
func startDemoDaemon(ctx context.Context, home string, delay time.Duration) (*demo, error) {
	d := &demo{home: home, sock: filepath.Join(home, "run", "bottlecap.sock")}
	settingsPath := filepath.Join(home, "settings.yml")
	if err := os.WriteFile(settingsPath, []byte(demoSettings), 0o600); err != nil {
		return nil, err
	}
	st, err := settings.Load(settingsPath)
	if err != nil {
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(home, "bottlecap.log"))
	if err != nil {
		return nil, err
	}
	d.logFile = logFile
	d.d, err = daemon.Start(ctx, daemon.Config{
		Socket: d.sock, DBPath: filepath.Join(home, "bot-bottle.db"), StoreOptions: []store.Option{store.WithSynchronousNormal()},
		Home: home, Settings: st, RawParser: daemon.ParseRaw, Version: Version + " (demo)",
		Log: slog.New(slog.NewTextHandler(logFile, nil)),
		Enforcer: func(db *store.DB) controller.Enforcer {
			d.enf = newDemoEnforcer(db, delay)
			return d.enf
		},
	})
	if err != nil {
		logFile.Close()
		return nil, err
	}
	d.db = d.d.DB
	return d, nil
}

// populate registers the bottles and starts one sidecar per bottle.
func (d *demo) populate(ctx context.Context, speed float64) error {
	c := client.New(d.sock, client.WithRetry(5*time.Second))
	for _, b := range demoBottles {
		if !b.register {
			continue
		}
		req := api.BottleRequest{Agent: b.agent, Name: b.agent, Parent: b.parent, Budget: b.budget, Shutdown: b.shutdown}
		if _, err := c.PutBottle(ctx, b.slug, req); err != nil {
			c.Close()
			return fmt.Errorf("register %s: %w", b.slug, err)
		}
	}
	simCtx, cancel := context.WithCancel(ctx)
	d.cancel = cancel
	for _, b := range demoBottles {
		d.sims.Add(1)
		go func() { defer d.sims.Done(); b.sidecar(simCtx, c, speed) }()
	}
	go func() { d.sims.Wait(); c.Close() }()
	return nil
}

// stop ends the sidecars, the enforcer, the daemon and the ledger, in that
// order.
func (d *demo) stop() {
	if d.cancel != nil {
		d.cancel()
	}
	d.sims.Wait()
	d.enf.stop()
	ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	d.d.Stop(ctx) // bounded; the demo's ledger is thrown away anyway
	d.logFile.Close()
}

// tail prints the audit log as it grows until ctx ends or for duration.
func (d *demo) tail(ctx context.Context, w io.Writer, duration time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, duration)
	defer cancel()
	var last int64
	for {
		entries, err := d.db.Audit(context.Background(), "", 200)
		if err != nil {
			return err
		}
		for i := len(entries) - 1; i >= 0; i-- { // newest first
			if e := entries[i]; e.Seq > last {
				fmt.Fprintf(w, "%s  %-14s %-18s %s\n", e.TS.Local().Format("15:04:05"), e.Kind, e.Bottle, e.Detail)
				last = e.Seq
			}
		}
		if !sleepCtx(ctx, 200*time.Millisecond) {
			return nil
		}
	}
}

// sidecar is one bottle's simulated egress sidecar: before each request it
// asks the gate, as `bottlecap meter` does, and reports the response's
// usage as the provider's own JSON, which the daemon normalises. A denied
// bottle stops spending, as a real agent behind the meter would.
func (b demoBottle) sidecar(ctx context.Context, c *client.Client, speed float64) {
	for {
		jitter := 0.5 + rand.Float64()
		if !sleepCtx(ctx, time.Duration(float64(b.every)*jitter/speed)) {
			return
		}
		v, err := c.Verdict(ctx, client.VerdictQuery{Bottle: b.slug, Agent: b.agent, Provider: b.provider})
		if err != nil || !v.Allowed {
			continue // denied (or the daemon is going away): no request, no usage
		}
		r := api.Report{Report: budget.Report{Bottle: b.slug, Agent: b.agent}, Format: "auto"}
		r.ID, r.Host, r.Raw = b.response()
		if _, err := c.Ingest(ctx, []api.Report{r}); err != nil && ctx.Err() == nil {
			continue // the next response is reported all the same
		}
	}
}

// response is one upstream response body with token counts like real ones:
// Claude Code turns read most of their prompt from the cache; Codex turns
// reason before they answer.
func (b demoBottle) response() (id, host string, body json.RawMessage) {
	var v any
	if b.provider == "claude" {
		id, host = fmt.Sprintf("msg_01%016x%08x", rand.Uint64(), rand.Uint32()), "api.anthropic.com"
		v = map[string]any{"id": id, "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
			"stop_reason": "tool_use", "content": []any{},
			"usage": map[string]int{"input_tokens": 2 + rand.IntN(12), "cache_creation_input_tokens": 300 + rand.IntN(4000),
				"cache_read_input_tokens": 18_000 + rand.IntN(70_000), "output_tokens": 120 + rand.IntN(1400)}}
	} else {
		id, host = fmt.Sprintf("resp_%016x%016x", rand.Uint64(), rand.Uint64()), "api.openai.com"
		in, cached, out := 12_000+rand.IntN(40_000), 0, 200+rand.IntN(2500)
		cached = in * (60 + rand.IntN(35)) / 100
		v = map[string]any{"id": id, "object": "response", "model": "gpt-5-codex", "status": "completed",
			"usage": map[string]any{"input_tokens": in, "input_tokens_details": map[string]int{"cached_tokens": cached},
				"output_tokens": out, "output_tokens_details": map[string]int{"reasoning_tokens": out * 2 / 3},
				"total_tokens": in + out}}
	}
	body, _ = json.Marshal(v) // maps of strings and numbers always marshal
	return id, host, body
}

// demoEnforcer is the demo's controller.Enforcer: it touches no container.
// After a short delay (so the pending state shows) it records in the audit
// log what a real enforcer would have done and finishes the job as done.
type demoEnforcer struct {
	db    *store.DB
	delay time.Duration
	done  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup
}

var _ controller.Enforcer = (*demoEnforcer)(nil)

func newDemoEnforcer(db *store.DB, delay time.Duration) *demoEnforcer {
	return &demoEnforcer{db: db, delay: delay, done: make(chan struct{})}
}

// Submit records "would …" and finishes the job, without blocking.
func (e *demoEnforcer) Submit(job controller.Job) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		select {
		case <-e.done:
			return // shutting down: the job stays pending in a ledger about to be removed
		case <-time.After(e.delay):
		}
		a := job.Action
		detail := fmt.Sprintf("would %s %s (%s #%d): the demo touches no containers", demoVerbs[a.Kind], a.Bottle, a.Kind, a.ID)
		if _, err := e.db.AppendAudit(context.Background(), store.AuditEntry{Kind: "demo", Bottle: a.Bottle, Detail: detail}); err != nil {
			job.Finished(1, fmt.Errorf("record the demo action: %w", err))
			return
		}
		job.Finished(1, nil)
	}()
}

// demoVerbs say what each action would have done.
var demoVerbs = map[budget.ActionKind]string{
	budget.ActCutoff:  "cut off",
	budget.ActFreeze:  "freeze (commit, then stop)",
	budget.ActKill:    "kill (stop and remove)",
	budget.ActRestore: "restore",
}

// stop abandons jobs still waiting and waits for the ones running.
func (e *demoEnforcer) stop() {
	e.once.Do(func() { close(e.done) })
	e.wg.Wait()
}

// sleepCtx sleeps for d unless ctx ends first; it reports whether it slept.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
