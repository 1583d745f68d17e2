package controller

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// ErrAlreadyRunning means a live daemon already answers on the socket.
var ErrAlreadyRunning = errors.New("a bottlecap daemon is already running")

// Listen creates the daemon's unix socket, 0660, in a directory it creates
// 0750 or an existing one no one else can write to (socketdir.go). A live
// daemon on the path is an error; a stale socket file left by a crash is
// replaced. No TCP listener is ever opened.
func Listen(path string) (*net.UnixListener, error) {
	if err := socketDir(filepath.Dir(path)); err != nil {
		return nil, err
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	l.SetUnlinkOnClose(true)
	if err := os.Chmod(path, 0o660); err != nil {
		l.Close()
		return nil, fmt.Errorf("secure socket: %w", err)
	}
	return l, nil
}

// removeStale deletes a socket file nobody answers on, and refuses to touch
// one a live daemon answers on or a path that is not a socket.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("%s exists and is not a socket: move it away", path)
	}
	if liveDaemon(path) {
		return fmt.Errorf("%w on %s: stop it first (bottlecap status shows its pid), or give this one another --socket", ErrAlreadyRunning, path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale socket: %w", err)
	}
	return nil
}

// liveDaemon reports whether something answers HTTP on the socket.
func liveDaemon(path string) bool {
	c := &http.Client{
		Timeout: 2 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}},
	}
	resp, err := c.Get("http://bottlecap/v1/status")
	if err != nil {
		// A refused connection is the stale case; anything else that
		// accepted a connection is alive enough not to be clobbered.
		return !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, syscall.ENOENT)
	}
	resp.Body.Close()
	return true
}
