package enforcement

import (
	"context"
	"errors"
	"slices"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/bot-bottle/bottlecap/budget"
)

// The marks of a bottle's sidecars (SPEC section 12), which a pause leaves
// running: the container bot-bottle-sidecars-<slug>, or one labelled as
// Compose's sidecars service or with bot-bottle's sidecar role.
const (
	SidecarsPrefix      = "bot-bottle-sidecars-"
	LabelComposeService = "com.docker.compose.service"
	LabelRole           = "bot-bottle.role"
)

// isSidecar reports whether a container of the bottle slug is one of its
// sidecars: the egress proxy and the meter keep running while the agent is
// paused, so that its connections stay up and its reports arrive.
func isSidecar(c container.Summary, slug string) bool {
	return slices.Contains(c.Names, "/"+SidecarsPrefix+slug) ||
		c.Labels[LabelComposeService] == "sidecars" || c.Labels[LabelRole] == "sidecar"
}

// pause freezes every running container of the bottle but its sidecars
// with the engine's pause (the cgroup freezer): their processes stop where
// they are and lose nothing. A container already paused, stopped or gone
// is done.
func (d *Docker) pause(ctx context.Context, a Action) error {
	ctrs, err := d.containers(ctx, a)
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range ctrs {
		if isSidecar(c, a.Bottle) || c.State != container.StateRunning {
			continue
		}
		_, err := call(ctx, d.CallTimeout, "pause "+short(c.ID), func(ctx context.Context) (client.ContainerPauseResult, error) {
			return d.engine.ContainerPause(ctx, c.ID, client.ContainerPauseOptions{})
		})
		// Conflict: it was paused or stopped meanwhile.
		errs = append(errs, ignore(err, budget.ErrNotFound, budget.ErrConflict))
	}
	return errors.Join(errs...)
}

// unpause lets every paused container of the bottle run again, whoever
// paused it: a restored bottle runs.
func (d *Docker) unpause(ctx context.Context, a Action) error {
	ctrs, err := d.containers(ctx, a)
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range ctrs {
		if c.State == container.StatePaused {
			errs = append(errs, d.unpauseOne(ctx, c.ID))
		}
	}
	return errors.Join(errs...)
}

// unpauseOne unpauses a container. The engine answers "not paused" with
// an error of no class, so a failure is checked against the container's
// state: not paused (or gone) any more is done.
func (d *Docker) unpauseOne(ctx context.Context, id string) error {
	_, err := call(ctx, d.CallTimeout, "unpause "+short(id), func(ctx context.Context) (client.ContainerUnpauseResult, error) {
		return d.engine.ContainerUnpause(ctx, id, client.ContainerUnpauseOptions{})
	})
	if err == nil {
		return nil
	}
	info, ok, ierr := d.inspect(ctx, id)
	if ierr == nil && (!ok || info.State == nil || !info.State.Paused) {
		return nil
	}
	return err
}
