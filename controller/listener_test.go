package controller_test

import (
	"errors"
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
