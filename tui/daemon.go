package tui

import (
	"context"
	"errors"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/client"
)

// reachTimeout bounds the reachability probe of each refresh.
const reachTimeout = time.Second

// ClientDaemon is the real Daemon: a thin adapter over the socket client.
// Give it a client made with client.WithRetry(0), so an unreachable daemon
// is reported at once instead of retried while the operator waits.
type ClientDaemon struct {
	c *client.Client
}

var _ Daemon = (*ClientDaemon)(nil)

// NewClientDaemon adapts c.
func NewClientDaemon(c *client.Client) *ClientDaemon { return &ClientDaemon{c: c} }

// Act sends POST /v1/bottles/{slug}/actions.
func (d *ClientDaemon) Act(ctx context.Context, slug string, action budget.ActionKind, reason string) error {
	_, err := d.c.Act(ctx, slug, api.ActionRequest{Action: string(action), Reason: reason})
	return err
}

// Probe asks for the daemon's status. Any reply, even a refusal (a
// non-operator may not read the status), means the daemon is there; an
// answer says what its allowances hold.
func (d *ClientDaemon) Probe(ctx context.Context) Probe {
	ctx, cancel := context.WithTimeout(ctx, reachTimeout)
	defer cancel()
	st, err := d.c.Status(ctx)
	var reply *client.Error
	return Probe{Up: err == nil || errors.As(err, &reply), StatusRead: err == nil, Held: st.Held, Fleet: st.Fleet}
}

// Events subscribes to GET /v1/events; the channel closes when ctx ends or
// the daemon goes away.
func (d *ClientDaemon) Events(ctx context.Context) (<-chan api.Event, error) {
	s, err := d.c.Events(ctx)
	if err != nil {
		return nil, err
	}
	return s.C, nil
}
