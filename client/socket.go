// Package client is the Go client of the bottlecap daemon's socket API
// (SPEC section 5). It dials the unix socket, speaks /v1 with the wire types
// of package api, turns error replies back into the budget error classes,
// retries what is safe to retry, and says in plain words when the daemon is
// not running. The CLI, the dashboard and the metering proxy all use it.
package client

import "path/filepath"

// EnvSocket is the environment variable that overrides the socket path, so
// scripts and sidecars can point every command at another daemon.
const EnvSocket = "BOTTLECAP_SOCKET"

// SocketPath is the daemon's socket under a bot-bottle home, unless override
// names another one. Sidecars bind-mount the run/ directory, not the file.
func SocketPath(home, override string) string {
	if override != "" {
		return override
	}
	return filepath.Join(home, "run", "bottlecap.sock")
}

// ResolveSocket picks the socket path the same way in the daemon and every
// client, so they cannot disagree: an explicit flag, then $BOTTLECAP_SOCKET
// (env, as read by the caller), then `socket:` from settings.yml, then
// <home>/run/bottlecap.sock.
func ResolveSocket(flag, env, settingsSocket, home string) string {
	for _, s := range []string{flag, env, settingsSocket} {
		if s != "" {
			return s
		}
	}
	return SocketPath(home, "")
}
