package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/bot-bottle/bottlecap/internal/testutil"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/client"
)

// The daemon runs as nobody in these tests; the same-group peer is another
// uid in nobody's group.
const (
	nobody       = 65534
	sameGroupUID = 65533
)

// sameGroupEnv, when set to a home, makes TestSameGroupPeerProcess act as
// the same-group peer of TestUnprivilegedDaemonKeepsTheLedgerPrivate.
const sameGroupEnv = "BOTTLECAP_TEST_SAME_GROUP_HOME"

// sameGroupView is what the same-group peer could do.
type sameGroupView struct {
	ReadLedger  string // "" when it could read the ledger file, else why not
	VerdictCode int
	AuditCode   int
}

// TestSameGroupPeerProcess is not a test on its own: run as sameGroupUID
// with sameGroupEnv set, it tries to read the ledger file and to use the
// socket, and prints what it could do.
func TestSameGroupPeerProcess(t *testing.T) {
	home := os.Getenv(sameGroupEnv)
	if home == "" {
		t.Skip("helper process for TestUnprivilegedDaemonKeepsTheLedgerPrivate")
	}
	var v sameGroupView
	if b, err := os.ReadFile(filepath.Join(home, "bot-bottle.db")); err != nil {
		v.ReadLedger = err.Error()
	} else if len(b) == 0 {
		v.ReadLedger = "empty"
	}
	sock := filepath.Join(home, "run", "bottlecap.sock")
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	v.VerdictCode = statusOf(hc, "/v1/verdict?bottle=b1&provider=claude")
	v.AuditCode = statusOf(hc, "/v1/audit")
	json.NewEncoder(os.Stdout).Encode(v)
}

func statusOf(hc *http.Client, path string) int {
	resp, err := hc.Get("http://bottlecap" + path)
	if err != nil {
		return -1
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// unprivileged is a directory nobody owns, holding copies of the binaries
// nobody and the same-group peer run.
type unprivileged struct {
	dir, bin, testBin string
}

func newUnprivileged(t *testing.T) *unprivileged {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("needs root to run the daemon as nobody")
	}
	u := &unprivileged{dir: newHome(t)}
	u.bin, u.testBin = filepath.Join(u.dir, "bottlecap"), filepath.Join(u.dir, "cmd.test")
	testutil.CopyExecutable(t, bottlecapBinary(t), u.bin)
	testutil.CopyExecutable(t, os.Args[0], u.testBin)
	if err := os.Chown(u.dir, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	os.Chmod(u.dir, 0o755)
	return u
}

// command is the binary run with args as uid:gid.
func (u *unprivileged) command(uid, gid uint32, bin string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.Dir = u.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
	return cmd
}

// TestUnprivilegedDaemonKeepsTheLedgerPrivate runs `bottlecap serve` as
// nobody: the ledger's files are 0600 (after writes, so -wal and -shm
// exist), run/ is 0750 and the socket 0660; a peer of another uid in the
// daemon's group reaches the socket (gate 200, audit 403) but cannot read
// the ledger file, and `bottlecap dash` tells it why.
func TestUnprivilegedDaemonKeepsTheLedgerPrivate(t *testing.T) {
	u := newUnprivileged(t)
	home := filepath.Join(u.dir, "home")
	serve := u.command(nobody, nobody, u.bin, "serve", "--docker=false")
	serve.Env = append(os.Environ(), "BOT_BOTTLE_HOME="+home, "BOTTLECAP_SOCKET=")
	startProc(t, serve)
	c := client.New(filepath.Join(home, "run", "bottlecap.sock"), client.WithRetry(20*time.Second))
	defer c.Close()
	ingest(t, c, "b1", "r1", 10) // root is an operator and may report

	for name, want := range map[string]fs.FileMode{"bot-bottle.db": 0o600, "bot-bottle.db-wal": 0o600, "bot-bottle.db-shm": 0o600,
		"run": 0o750 | fs.ModeDir, "run/bottlecap.sock": 0o660 | fs.ModeSocket} {
		fi, err := os.Stat(filepath.Join(home, name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if fi.Mode() != want || fi.Sys().(*syscall.Stat_t).Uid != nobody {
			t.Errorf("%s: got mode %s owned by uid %d, want %s owned by nobody", name, fi.Mode(), fi.Sys().(*syscall.Stat_t).Uid, want)
		}
	}

	peer := u.command(sameGroupUID, nobody, u.testBin, "-test.run=^TestSameGroupPeerProcess$")
	peer.Env = append(os.Environ(), sameGroupEnv+"="+home)
	out, err := peer.Output()
	if err != nil {
		t.Fatalf("same-group peer: %v\n%s", err, out)
	}
	var v sameGroupView
	if err := json.NewDecoder(strings.NewReader(string(out))).Decode(&v); err != nil {
		t.Fatalf("same-group peer said %q: %v", out, err)
	}
	if !strings.Contains(v.ReadLedger, "permission denied") || v.VerdictCode != 200 || v.AuditCode != 403 {
		t.Errorf("same-group peer: got %+v, want the ledger unreadable (permission denied), gate 200, audit 403", v)
	}

	dash := u.command(sameGroupUID, nobody, u.bin, "dash")
	dash.Env = append(os.Environ(), "BOT_BOTTLE_HOME="+home, "BOTTLECAP_SOCKET=")
	if out, err := dash.CombinedOutput(); err == nil || !strings.Contains(string(out), "only the daemon's user and root may") {
		t.Errorf("dash as a same-group peer: got %v\n%s\nwant a refusal saying who may read the ledger", err, out)
	}
}

// TestUnprivilegedDaemonRefusesASharedSocketDirectory runs `bottlecap
// serve` as nobody with its socket in a directory shaped like /tmp: it
// must exit saying why, and leave the directory's mode alone.
func TestUnprivilegedDaemonRefusesASharedSocketDirectory(t *testing.T) {
	u := newUnprivileged(t)
	shared := filepath.Join(u.dir, "shared")
	os.Mkdir(shared, 0o700)
	const sharedMode = 0o777 | fs.ModeSticky
	os.Chmod(shared, sharedMode)
	serve := u.command(nobody, nobody, u.bin, "serve", "--docker=false", "--socket", filepath.Join(shared, "b.sock"))
	serve.Env = append(os.Environ(), "BOT_BOTTLE_HOME="+filepath.Join(u.dir, "home"), "BOTTLECAP_SOCKET=")
	done := make(chan struct{})
	var out []byte
	var err error
	go func() {
		out, err = serve.CombinedOutput()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(within):
		serve.Process.Kill()
		<-done
		t.Fatalf("serve with a shared socket directory still running after %s\n%s", within, out)
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) || !strings.Contains(string(out), shared) || !strings.Contains(string(out), "writable by others") {
		t.Errorf("got %v\n%s\nwant serve to exit with a message naming %s as writable by others", err, out, shared)
	}
	if fi, _ := os.Stat(shared); fi.Mode() != sharedMode|fs.ModeDir {
		t.Errorf("shared directory: got mode %s, want it left at %s", fi.Mode(), sharedMode|fs.ModeDir)
	}
}

// startProc starts cmd and kills it when the test ends.
func startProc(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("daemon log:\n%s", stderr.String())
		}
	})
}

func TestCheckSettingsFile(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		mode    fs.FileMode // 0: no file
		owner   int         // -1: the test's own uid
		wantErr string
	}{
		{"missing: the defaults", 0, -1, ""},
		{"0600", 0o600, -1, ""},
		{"0644", 0o644, -1, ""},
		{"group-writable", 0o664, -1, "writable by others"},
		{"world-writable", 0o646, -1, "writable by others"},
		{"another user's", 0o644, nobody, "belongs to another user"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, fmt.Sprintf("settings-%d.yml", i))
			if tt.mode != 0 {
				os.WriteFile(path, []byte("operators: []\n"), 0o600)
				os.Chmod(path, tt.mode)
			}
			if tt.owner >= 0 {
				if os.Getuid() != 0 {
					t.Skip("needs root to give a file away")
				}
				os.Chown(path, tt.owner, tt.owner)
			}
			err := checkSettingsFile(path)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("got %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestServeTightensALooseLedger starts the daemon on a ledger file others
// may read, as older versions left it: it is tightened to 0600 and the
// daemon says so.
func TestServeTightensALooseLedger(t *testing.T) {
	home := newHome(t)
	db := filepath.Join(home, "bot-bottle.db")
	if err := os.WriteFile(db, nil, 0o644); err != nil { // an empty file is an empty ledger
		t.Fatal(err)
	}
	os.Chmod(db, 0o644)
	p := startServe(t, home)
	if fi, err := os.Stat(db); err != nil {
		t.Errorf("ledger after start: %v", err)
	} else if fi.Mode().Perm() != 0o600 {
		t.Errorf("ledger after start: got mode %o, want 600", fi.Mode().Perm())
	}
	if log := p.stderr.String(); !strings.Contains(log, "ledger file was open to others") || !strings.Contains(log, "was=0644") {
		t.Errorf("the daemon did not say it tightened the ledger:\n%s", log)
	}
}
