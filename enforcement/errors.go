package enforcement

import (
	"context"
	"errors"
	"fmt"
	"time"

	cerrdefs "github.com/containerd/errdefs"

	"github.com/bot-bottle/bottlecap/budget"
)

// DefaultCallTimeout bounds every single engine call, so that a hung engine
// turns into a retryable error instead of a stuck action.
const DefaultCallTimeout = 10 * time.Second

// Retryable reports whether an action that failed with err may succeed if
// tried again later: the engine was unreachable, timed out or failed
// internally. Refusals (not found, conflict, invalid, denied) are permanent.
func Retryable(err error) bool {
	return errors.Is(err, budget.ErrUnavailable)
}

// call runs one engine call under its own timeout and translates its error.
func call[T any](ctx context.Context, timeout time.Duration, what string, f func(context.Context) (T, error)) (T, error) {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	v, err := f(cctx)
	return v, translate(ctx, what, err)
}

// translate maps an engine error to budget's classes. It is the only place
// that looks at Docker's error types. Anything the engine did not
// positively refuse (connection failures, timeouts, internal errors, broken
// streams) is ErrUnavailable: trying again may help. The caller's own
// cancellation is passed through unchanged so that it is never retried.
func translate(ctx context.Context, what string, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", what, ctx.Err())
	}
	return fmt.Errorf("%s: %w: %v", what, class(err), err)
}

// class is the budget sentinel an engine error belongs to.
func class(err error) error {
	switch {
	case cerrdefs.IsNotFound(err):
		return budget.ErrNotFound
	case cerrdefs.IsConflict(err), cerrdefs.IsAlreadyExists(err), cerrdefs.IsFailedPrecondition(err), cerrdefs.IsNotModified(err):
		return budget.ErrConflict
	case cerrdefs.IsInvalidArgument(err), cerrdefs.IsNotImplemented(err), cerrdefs.IsOutOfRange(err):
		return budget.ErrInvalid
	case cerrdefs.IsPermissionDenied(err), cerrdefs.IsUnauthorized(err):
		return budget.ErrDenied
	}
	return budget.ErrUnavailable
}

// ignore drops the error classes that mean "already done" for the caller.
func ignore(err error, classes ...error) error {
	for _, c := range classes {
		if errors.Is(err, c) {
			return nil
		}
	}
	return err
}
