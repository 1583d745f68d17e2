package testutil

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// The variables through which bottlecap, its addon and its tests find a
// home and a daemon when given none.
const (
	envHome     = "BOT_BOTTLE_HOME"
	envSocket   = "BOTTLECAP_SOCKET"
	envFleetDSN = "BOTTLECAP_FLEET_DSN"
)

// RunIsolated runs a package's tests, from its TestMain, with
// BOT_BOTTLE_HOME and BOTTLECAP_SOCKET pointing into a temporary directory
// of their own (removed afterwards), and BOTTLECAP_FLEET_DSN unset, and
// returns m.Run's exit code.
// Whatever falls back on the environment — a command run in-process, a
// child process that inherits it, the mitmproxy addon's tests — then
// lands there, never in a user's ~/.bot-bottle or on the daemon a user's
// shell names, nor ship to a fleet's Postgres: tests touch no daemon or
// database they did not start.
func RunIsolated(m *testing.M) int {
	dir, err := os.MkdirTemp("", "bciso")
	if err != nil {
		fmt.Fprintln(os.Stderr, "isolate the tests from a user's home:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	home := filepath.Join(dir, "home")
	os.Setenv(envHome, home)
	os.Setenv(envSocket, filepath.Join(home, "run", "bottlecap.sock"))
	os.Unsetenv(envFleetDSN)
	return m.Run()
}
