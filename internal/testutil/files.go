package testutil

import (
	"os"
	"testing"
)

// CopyExecutable copies a binary (a test's own, or one it built) to a path
// another uid can run it from: tests that act as an unprivileged peer
// re-execute themselves from a directory that uid may read.
func CopyExecutable(t testing.TB, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}
