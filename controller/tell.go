package controller

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/bot-bottle/bottlecap/budget"
)

// Notifier takes the notices operators' sinks may want (SPEC section 13).
// Notify is called on the ingest and enforcement paths, so it must only
// hand the notice over and return (the notifier queues and delivers it on
// goroutines of its own); SetSinks puts reloaded sinks in force.
type Notifier interface {
	Notify(budget.Notice)
	SetSinks([]budget.NotifySink)
}

// tell is the one way the core says that something happened: one log line
// at the default level (so that the daemon's journal tells the story) and
// the notice handed to the notifier. It runs outside the core's locks.
func (c *Core) tell(n budget.Notice) {
	if n.TS.IsZero() {
		n.TS = c.now().UTC()
	}
	c.log.LogAttrs(context.Background(), noticeLevel(n), noticeMessage(n), noticeAttrs(n)...)
	if c.notifier != nil {
		c.notifier.Notify(n)
	}
}

// noticeLevel is a notice's log level: what stopped or failed to stop a
// bottle is a warning, a failure an error.
func noticeLevel(n budget.Notice) slog.Level {
	switch n.Kind {
	case budget.NoticeActionFailed:
		return slog.LevelError
	case budget.NoticeWarn, budget.NoticeCrossing:
		return slog.LevelWarn
	case budget.NoticeRate:
		if n.Action != budget.ActRestore {
			return slog.LevelWarn
		}
	}
	return slog.LevelInfo
}

// noticeMessage is the fixed message of a notice's log line, to grep for.
func noticeMessage(n budget.Notice) string {
	switch n.Kind {
	case budget.NoticeWarn:
		return "budget past its warn threshold"
	case budget.NoticeCrossing:
		return "budget exhausted"
	case budget.NoticeActionDone:
		return "action done"
	case budget.NoticeActionFailed:
		return "action failed"
	case budget.NoticeReset:
		return "budget window reset"
	case budget.NoticeRate:
		if n.Action == budget.ActRestore {
			return "rate guard lifted"
		}
		return "rate guard tripped"
	}
	return string(n.Kind)
}

// noticeAttrs are the fields of a notice that apply to it.
func noticeAttrs(n budget.Notice) []slog.Attr {
	attrs := make([]slog.Attr, 0, 10)
	str := func(k, v string) {
		if v != "" {
			attrs = append(attrs, slog.String(k, v))
		}
	}
	num := func(k string, v int64) {
		if v != 0 {
			attrs = append(attrs, slog.Int64(k, v))
		}
	}
	str("bottle", n.Bottle)
	str("bottles", strings.Join(n.Bottles, ","))
	str("scope", string(n.Scope))
	str("scope_id", n.ScopeID)
	str("provider", n.Provider)
	num("used", n.Used)
	num("limit", n.Limit)
	str("action", string(n.Action))
	num("action_id", n.ActionID)
	num("attempts", int64(n.Attempts))
	str("reason", n.Reason)
	str("err", n.Error)
	return attrs
}

// budgetNotice is a warn or a crossing of a budget, with the bottles it
// governs: what the events stream, the log and the sinks are told.
func budgetNotice(kind budget.NoticeKind, e budget.Event, bottles []string) budget.Notice {
	n := budget.Notice{Kind: kind, Scope: e.Scope.Kind, ScopeID: e.Scope.ID, Provider: e.Provider,
		Limit: e.Limit, Used: e.Used, Reason: e.Reason, Bottles: bottles, Text: e.Reason}
	if e.Scope.Kind == budget.ScopeBottle {
		n.Bottle = e.Scope.ID
	}
	if bottles == nil {
		for _, t := range e.Targets {
			n.Bottles = append(n.Bottles, t.Slug)
		}
	}
	return n
}

// tellCrossings tells each crossing among claims once, with the bottles it
// acts on and what it does to them: claim lists a crossing's bottles one
// after another.
func (c *Core) tellCrossings(claims []claim) {
	for i := 0; i < len(claims); {
		cl := claims[i]
		j := i + 1
		if cl.kind == "" || cl.event.Kind != budget.EventCrossed {
			i = j
			continue
		}
		bottles := []string{cl.slug}
		for ; j < len(claims) && sameCrossing(claims[j], cl); j++ {
			bottles = append(bottles, claims[j].slug)
		}
		n := budgetNotice(budget.NoticeCrossing, cl.event, bottles)
		n.Action = cl.kind
		n.Text = fmt.Sprintf("%s: %s %s", cl.event.Reason, cl.kind, strings.Join(bottles, ", "))
		c.tell(n)
		i = j
	}
}

// sameCrossing reports whether a claim acts on the same crossing as cl.
func sameCrossing(a, cl claim) bool {
	return a.kind != "" && a.event.Kind == budget.EventCrossed && a.event.Scope == cl.event.Scope &&
		a.event.Provider == cl.event.Provider && a.event.Reason == cl.event.Reason
}

// tellRateTrips tells each bottle the rate guard tripped on among claims.
func (c *Core) tellRateTrips(claims []claim) {
	for _, cl := range claims {
		if cl.kind != "" && cl.event.Kind == "" {
			c.tell(budget.Notice{Kind: budget.NoticeRate, Bottle: cl.slug, Action: cl.kind, Reason: cl.event.Reason,
				Text: fmt.Sprintf("rate guard tripped on %s: %s; %s", cl.slug, cl.event.Reason, cl.kind)})
		}
	}
}

// tellFinished tells an action's outcome.
func (c *Core) tellFinished(act budget.Action, attempts int, err error) {
	n := budget.Notice{Kind: budget.NoticeActionDone, Bottle: act.Bottle, Action: act.Kind, ActionID: act.ID,
		Attempts: attempts, Reason: act.Reason,
		Text: fmt.Sprintf("%s of %s done (%s)", act.Kind, act.Bottle, act.Reason)}
	if err != nil {
		n.Kind, n.Error = budget.NoticeActionFailed, err.Error()
		n.Text = fmt.Sprintf("%s of %s failed after %d attempt(s): %v (%s)", act.Kind, act.Bottle, attempts, err, act.Reason)
	}
	c.tell(n)
}

// logStarted logs an action handed to the enforcer: no sink is told (the
// crossing that started it was), but the journal shows every step.
func (c *Core) logStarted(act budget.Action, by string) {
	c.log.LogAttrs(context.Background(), slog.LevelInfo, "action started",
		slog.String("bottle", act.Bottle), slog.String("action", string(act.Kind)), slog.Int64("action_id", act.ID),
		slog.String("by", by), slog.String("reason", act.Reason))
}
