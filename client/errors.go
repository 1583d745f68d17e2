package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"syscall"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
)

// ErrDaemonDown marks a socket nobody listens on (no socket file, or a stale
// one): the daemon is not running. Callers test for it with errors.Is to
// tell "start the daemon" apart from every other failure.
var ErrDaemonDown = errors.New("bottlecap daemon is not running")

// Error is an error reply of the daemon: its HTTP status and the message of
// its {"error": "..."} body. Unwrap maps the status back to the budget error
// class the daemon translated from, so callers use errors.Is with
// budget.ErrNotFound and friends rather than status numbers.
type Error struct {
	Status  int
	Message string
	body    []byte // the raw reply, for routes whose error body is richer
}

// Error returns the daemon's message, which already says what went wrong.
func (e *Error) Error() string {
	if e.Message != "" {
		return e.Message
	}
	return fmt.Sprintf("the daemon answered %d %s", e.Status, http.StatusText(e.Status))
}

// Unwrap returns the budget error class of the status, or nil.
func (e *Error) Unwrap() error {
	switch e.Status {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		return budget.ErrInvalid
	case http.StatusForbidden:
		return budget.ErrDenied
	case http.StatusNotFound:
		return budget.ErrNotFound
	case http.StatusConflict:
		return budget.ErrConflict
	case http.StatusServiceUnavailable, http.StatusRequestTimeout:
		// 408: the request was too slow to arrive; sent again it may not be.
		return budget.ErrUnavailable
	}
	return nil
}

// maxErrorBody caps how much of an error reply is read.
const maxErrorBody = 64 << 10

// replyError builds the *Error of a non-2xx reply from its body.
func replyError(status int, body []byte) *Error {
	e := &Error{Status: status, body: body}
	var msg api.Error
	if json.Unmarshal(body, &msg) == nil && msg.Error != "" {
		e.Message = msg.Error
	} else if s := strings.TrimSpace(string(body)); s != "" && len(s) < 512 {
		e.Message = s
	}
	return e
}

// maxSocketPath is the longest path a unix socket address holds on Linux.
const maxSocketPath = 107

// DialError is a failure to connect to the socket: nothing was sent. It
// names the socket and, when the daemon is simply not running, wraps
// ErrDaemonDown and says how to start it.
type DialError struct {
	Socket string
	Err    error
}

// Error says which socket could not be reached, why, and what to do.
func (e *DialError) Error() string {
	cause := e.Err.Error()
	var se *os.SyscallError
	if errors.As(e.Err, &se) {
		cause = se.Error() // "connect: no such file or directory", without the path again
	}
	switch {
	case len(e.Socket) > maxSocketPath:
		return fmt.Sprintf("cannot reach the bottlecap daemon at %s: the path is %d bytes, longer than a unix socket address can hold (%d); use a shorter --socket or BOTTLECAP_SOCKET.", e.Socket, len(e.Socket), maxSocketPath)
	case e.down():
		return fmt.Sprintf("cannot reach the bottlecap daemon at %s (%s): is it running? Start it with \"bottlecap serve\" (or \"make run\").", e.Socket, cause)
	case errors.Is(e.Err, syscall.EACCES), errors.Is(e.Err, syscall.EPERM):
		return fmt.Sprintf("cannot reach the bottlecap daemon at %s (%s): the socket is open to the daemon's user and group only; run as one of them, or set BOTTLECAP_SOCKET/--socket to a socket you may use.", e.Socket, cause)
	}
	return fmt.Sprintf("cannot reach the bottlecap daemon at %s (%s)", e.Socket, cause)
}

// Unwrap exposes both ErrDaemonDown (when it applies) and the system error,
// so errors.Is works with either.
func (e *DialError) Unwrap() []error {
	if e.down() {
		return []error{ErrDaemonDown, e.Err}
	}
	return []error{e.Err}
}

// down reports whether nobody listens: no socket file, a stale socket, or a
// path that is not a socket (connect answers ECONNREFUSED for those too).
func (e *DialError) down() bool {
	return errors.Is(e.Err, syscall.ENOENT) || errors.Is(e.Err, syscall.ECONNREFUSED) ||
		errors.Is(e.Err, syscall.ENOTDIR)
}

// transient reports whether trying again soon may succeed: the daemon is
// (re)starting, or its listen backlog is full (EAGAIN on unix sockets).
func (e *DialError) transient() bool {
	return e.down() || errors.Is(e.Err, syscall.EAGAIN)
}
