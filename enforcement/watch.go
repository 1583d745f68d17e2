package enforcement

import (
	"context"
	"maps"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"

	"github.com/bot-bottle/bottlecap/internal/retry"
)

// Watcher discovers bottle containers as they start, die and go away:
// those of its daemon only (see LabelDaemon). It follows the engine's event stream and, each time it (re)subscribes,
// reconciles with a full container list, so nothing that happened while the
// stream was down is missed. Report may see the same state twice; it must
// be idempotent.
type Watcher struct {
	Engine Engine
	Report func(Discovered)
	// DaemonID is the id of the daemon watching ("" for none): containers
	// labelled for another daemon are not its bottles and are passed over.
	DaemonID string
	// Backoff spaces re-subscriptions after the stream fails.
	Backoff     Backoff
	Sleep       func(ctx context.Context, d time.Duration) error
	CallTimeout time.Duration
	// OnError, if set, hears why a session ended (the watch itself goes
	// on), so the daemon can show that discovery is degraded.
	OnError func(error)

	known map[string]Discovered // containers reported and not yet removed
}

// Run watches until ctx is done and returns ctx's error. Stream and list
// failures are retried with backoff; they never end the watch.
func (w *Watcher) Run(ctx context.Context) error {
	if w.Backoff.Base <= 0 {
		w.Backoff = DefaultBackoff
	}
	if w.Sleep == nil {
		w.Sleep = retry.Sleep
	}
	if w.CallTimeout <= 0 {
		w.CallTimeout = DefaultCallTimeout
	}
	w.known = map[string]Discovered{}
	failures := 0
	for {
		synced, err := w.session(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if w.OnError != nil {
			w.OnError(err)
		}
		if synced {
			failures = 0
		}
		failures++
		if w.Sleep(ctx, w.Backoff.Delay(failures)) != nil {
			return ctx.Err()
		}
	}
}

// session subscribes, reconciles and then follows events until the stream
// fails. synced tells whether it got as far as a successful reconcile.
func (w *Watcher) session(ctx context.Context) (synced bool, err error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the client's stream goroutine
	filters := client.Filters{}.Add("type", string(events.ContainerEventType)).
		Add("event", string(events.ActionStart), string(events.ActionDie), string(events.ActionDestroy))
	stream := w.Engine.Events(sctx, client.EventsListOptions{Filters: filters})
	if err := w.reconcile(ctx); err != nil {
		return false, err
	}
	for {
		select {
		case m := <-stream.Messages:
			w.event(m)
		case err := <-stream.Err:
			return true, translate(ctx, "docker events", err)
		case <-ctx.Done():
			return true, ctx.Err()
		}
	}
}

// reconcile reports every bottle container the engine lists, and reports
// as removed those known before that are gone.
func (w *Watcher) reconcile(ctx context.Context) error {
	res, err := call(ctx, w.CallTimeout, "list containers", func(ctx context.Context) (client.ContainerListResult, error) {
		return w.Engine.ContainerList(ctx, client.ContainerListOptions{All: true})
	})
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, c := range res.Items {
		d, ok := w.parse(c.Labels)
		if !ok {
			continue
		}
		d.ContainerID, d.State = c.ID, listState(c.State)
		if len(c.Names) > 0 {
			d.Name = strings.TrimPrefix(c.Names[0], "/")
		}
		seen[c.ID] = true
		w.report(d)
	}
	for id, d := range w.known {
		if !seen[id] {
			d.State = StateRemoved
			w.report(d)
		}
	}
	return nil
}

// event reports one container event of a bottle container.
func (w *Watcher) event(m events.Message) {
	labels := maps.Clone(m.Actor.Attributes)
	name := labels["name"]
	for _, k := range []string{"name", "image", "exitCode", "signal", "execDuration"} {
		delete(labels, k)
	}
	d, ok := w.parse(labels)
	if !ok || m.Actor.ID == "" {
		return
	}
	d.ContainerID, d.Name = m.Actor.ID, name
	switch m.Action {
	case events.ActionStart:
		d.State = StateRunning
	case events.ActionDie:
		d.State = StateDied
	case events.ActionDestroy:
		d.State = StateRemoved
	default:
		return
	}
	w.report(d)
}

// parse reads a container's labels when it is a bottle's of this
// watcher's daemon; ok is false for any other container.
func (w *Watcher) parse(labels map[string]string) (Discovered, bool) {
	if !OfDaemon(labels, w.DaemonID) {
		return Discovered{}, false
	}
	return ParseLabels(labels)
}

func (w *Watcher) report(d Discovered) {
	if d.State == StateRemoved {
		delete(w.known, d.ContainerID)
	} else {
		w.known[d.ContainerID] = d
	}
	if w.Report != nil {
		w.Report(d)
	}
}

// listState maps a listed container's state to discovery's.
func listState(s container.ContainerState) ContainerState {
	switch s {
	case container.StateRunning, container.StateRestarting, container.StatePaused:
		return StateRunning
	case container.StateCreated:
		return StateCreated
	}
	return StateDied
}
