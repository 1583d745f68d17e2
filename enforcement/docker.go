package enforcement

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/bot-bottle/bottlecap/budget"
)

// Labels and names that tie Docker objects to a bottle (SPEC section 2).
const (
	LabelProject  = "com.docker.compose.project"
	LabelBottle   = "bot-bottle.bottle"
	ProjectPrefix = "bot-bottle-"
	// RoutesPath is where the egress sidecar reads its routes.
	RoutesPath = "/etc/egress/routes.yaml"
)

// Docker carries out actions on the engine. Every step checks the current
// state first or treats "not found" and "already so" as done, so an action
// can be retried or repeated without changing anything the second time.
type Docker struct {
	engine Engine
	home   string
	memo   Memo
	// CallTimeout bounds each engine call; StopGrace is how long a stopped
	// container has to exit before the engine kills it; DaemonID is the
	// daemon's id ("" for none): containers and networks labelled for
	// another daemon are never touched (see LabelDaemon). Set them before
	// the first Do.
	CallTimeout time.Duration
	StopGrace   time.Duration
	DaemonID    string
}

// NewDocker returns an enforcer that acts through engine, writes freeze
// state under home (the bot-bottle home) and keeps cutoff memos in memo.
func NewDocker(engine Engine, home string, memo Memo) *Docker {
	return &Docker{engine: engine, home: home, memo: memo, CallTimeout: DefaultCallTimeout, StopGrace: 10 * time.Second}
}

// Do carries out one action. Errors wrap budget's classes; Retryable tells
// whether trying again may help.
func (d *Docker) Do(ctx context.Context, a Action) error {
	if err := budget.ValidateSlug("bottle", a.Bottle); err != nil {
		return err
	}
	var err error
	switch a.Kind {
	case budget.ActCutoff:
		err = d.cutoff(ctx, a)
	case budget.ActPause:
		err = d.pause(ctx, a)
	case budget.ActRestore:
		err = d.restore(ctx, a)
	case budget.ActFreeze:
		err = d.freeze(ctx, a)
	case budget.ActKill:
		err = d.kill(ctx, a)
	default:
		err = fmt.Errorf("%w: action %q", budget.ErrInvalid, a.Kind)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", a, err)
	}
	return nil
}

// containers lists the bottle's containers, running or not: those of its
// Compose project, those labelled with its slug and those given by id,
// all of them of this daemon (a registration cannot hand it another
// daemon's container either). The
// given ones come first, then the oldest first, so "the first container" is
// stable.
func (d *Docker) containers(ctx context.Context, a Action) ([]container.Summary, error) {
	res, err := call(ctx, d.CallTimeout, "list containers", func(ctx context.Context) (client.ContainerListResult, error) {
		return d.engine.ContainerList(ctx, client.ContainerListOptions{All: true})
	})
	if err != nil {
		return nil, err
	}
	var out []container.Summary
	for _, c := range res.Items {
		if OfDaemon(c.Labels, d.DaemonID) && belongs(c, a) {
			out = append(out, c)
		}
	}
	slices.SortStableFunc(out, func(x, y container.Summary) int {
		if gx, gy := givenIndex(x, a.Containers), givenIndex(y, a.Containers); gx != gy {
			return gx - gy
		}
		return int(x.Created - y.Created)
	})
	return out, nil
}

// belongs reports whether c is one of the bottle's containers.
func belongs(c container.Summary, a Action) bool {
	if c.Labels[LabelProject] == ProjectPrefix+a.Bottle || c.Labels[LabelBottle] == a.Bottle {
		return true
	}
	return givenIndex(c, a.Containers) < len(a.Containers)
}

// givenIndex is the position of c among ids (full or short ids, or names),
// or len(ids) when it is not there.
func givenIndex(c container.Summary, ids []string) int {
	for i, id := range ids {
		if id == "" {
			continue
		}
		if c.ID == id || (len(id) >= 12 && strings.HasPrefix(c.ID, id)) || slices.Contains(c.Names, "/"+strings.TrimPrefix(id, "/")) {
			return i
		}
	}
	return len(ids)
}

// inspect returns a container's details; ok is false when it is gone.
func (d *Docker) inspect(ctx context.Context, id string) (container.InspectResponse, bool, error) {
	res, err := call(ctx, d.CallTimeout, "inspect container "+short(id), func(ctx context.Context) (client.ContainerInspectResult, error) {
		return d.engine.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	})
	if err != nil {
		return container.InspectResponse{}, false, ignore(err, budget.ErrNotFound)
	}
	return res.Container, true, nil
}

// signal sends sig to a container; a container that is gone or not running
// has nothing to reload.
func (d *Docker) signal(ctx context.Context, id, sig string) error {
	_, err := call(ctx, d.CallTimeout, "signal "+sig+" to "+short(id), func(ctx context.Context) (client.ContainerKillResult, error) {
		return d.engine.ContainerKill(ctx, id, client.ContainerKillOptions{Signal: sig})
	})
	return ignore(err, budget.ErrNotFound, budget.ErrConflict)
}

// stop stops a container; stopping a stopped or removed one is done.
func (d *Docker) stop(ctx context.Context, id string) error {
	grace := int(d.StopGrace / time.Second)
	_, err := call(ctx, d.CallTimeout+d.StopGrace, "stop "+short(id), func(ctx context.Context) (client.ContainerStopResult, error) {
		return d.engine.ContainerStop(ctx, id, client.ContainerStopOptions{Timeout: &grace})
	})
	return ignore(err, budget.ErrNotFound, budget.ErrConflict)
}

// short is an id fit for error messages.
func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
