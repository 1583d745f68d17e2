package controller_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bot-bottle/bottlecap/controller"
)

func TestListenRefusesALiveDaemon(t *testing.T) {
	d := startDaemon(t, nil, nil)
	_, err := controller.Listen(d.sock)
	if !errors.Is(err, controller.ErrAlreadyRunning) || !strings.Contains(err.Error(), "stop it first") {
		t.Errorf("got %v, want ErrAlreadyRunning saying what to do", err)
	}
	if _, err := d.c.Status(t.Context()); err != nil {
		t.Errorf("the running daemon stopped answering: %v", err)
	}
}

func TestListenReplacesAStaleSocketOnly(t *testing.T) {
	dir, err := os.MkdirTemp("", "bcl")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	stale := filepath.Join(dir, "run", "stale.sock")
	os.MkdirAll(filepath.Dir(stale), 0o750)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close() // leaves the socket file behind, as a crash does
	l2, err := controller.Listen(stale)
	if err != nil {
		t.Fatalf("stale socket: got %v, want it replaced", err)
	}
	fi, _ := os.Stat(stale)
	if mode := fi.Mode().Perm(); mode != 0o660 {
		t.Errorf("got socket mode %o, want 660", mode)
	}
	l2.Close()

	plain := filepath.Join(dir, "run", "file")
	os.WriteFile(plain, []byte("x"), 0o600)
	if _, err := controller.Listen(plain); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("plain file: got %v, want a refusal naming it", err)
	}
}

// TestListenLeavesSharedDirectoriesAlone gives Listen existing directories
// others may write to, as /tmp is: each is refused with a message naming
// it, and its mode is left as it was.
func TestListenLeavesSharedDirectoriesAlone(t *testing.T) {
	tests := []struct {
		name string
		mode os.FileMode
	}{
		{"sticky and world-writable, like /tmp", 0o777 | os.ModeSticky},
		{"group-writable", 0o770},
		{"writable by others", 0o757},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(shortTempDir(t), "shared")
			os.Mkdir(dir, 0o700)
			os.Chmod(dir, tt.mode)
			_, err := controller.Listen(filepath.Join(dir, "b.sock"))
			if err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "never changes") {
				t.Errorf("got %v, want a refusal naming %s", err, dir)
			}
			if fi, _ := os.Stat(dir); fi.Mode() != tt.mode|os.ModeDir {
				t.Errorf("got directory mode %s, want it left at %s", fi.Mode(), tt.mode|os.ModeDir)
			}
			if _, err := os.Stat(filepath.Join(dir, "b.sock")); err == nil {
				t.Error("a socket was created in the refused directory")
			}
		})
	}
}

// TestListenOwnDirectories: a missing directory is created 0750; an
// existing one only the daemon's uid can write keeps its mode.
func TestListenOwnDirectories(t *testing.T) {
	base := shortTempDir(t)
	tests := []struct {
		name     string
		existing os.FileMode // 0: missing
		want     os.FileMode
	}{
		{"missing: created", 0, 0o750},
		{"existing 0755: kept", 0o755, 0o755},
		{"existing 0700: kept", 0o700, 0o700},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(base, fmt.Sprint(i), "run")
			os.MkdirAll(filepath.Dir(dir), 0o700)
			if tt.existing != 0 {
				os.Mkdir(dir, 0o700)
				os.Chmod(dir, tt.existing)
			}
			l, err := controller.Listen(filepath.Join(dir, "b.sock"))
			if err != nil {
				t.Fatalf("got %v, want a listener", err)
			}
			l.Close()
			if fi, _ := os.Stat(dir); fi.Mode().Perm() != tt.want {
				t.Errorf("got directory mode %o, want %o", fi.Mode().Perm(), tt.want)
			}
		})
	}
}

func TestListenRefusesADirectoryOfAnotherUser(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to give a directory to nobody")
	}
	dir := filepath.Join(shortTempDir(t), "theirs")
	os.Mkdir(dir, 0o755)
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	_, err := controller.Listen(filepath.Join(dir, "b.sock"))
	if err == nil || !strings.Contains(err.Error(), "belongs to uid 65534") {
		t.Errorf("got %v, want a refusal naming the owner", err)
	}
}

// shortTempDir is a temporary directory on a path short enough for a unix
// socket, removed when the test ends.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "bcl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
