package controller_test

import (
	"context"
	"encoding/json"
	"github.com/bot-bottle/bottlecap/internal/testutil"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
)

// peerEnv, when set, makes TestPeerClientProcess act as the client process
// run as another user by TestPermissionsOperatorVsOtherPeer.
const peerEnv = "BOTTLECAP_TEST_PEER_SOCKET"

// peerRequests are what the unprivileged peer tries, with the status each
// must get.
var peerRequests = []struct {
	method, path, body string
	want               int
}{
	{"POST", "/v1/usage", `{"id":"peer-1","bottle":"b1","provider":"claude","input_tokens":7}`, 200},
	{"GET", "/v1/verdict?bottle=b1&provider=claude", ``, 200},
	{"GET", "/v1/bottles", ``, 403},
	{"PUT", "/v1/bottles/b2", `{}`, 403},
	{"POST", "/v1/bottles/b1/actions", `{"action":"cutoff"}`, 403},
	{"PUT", "/v1/budgets/global/-", `{"claude":1}`, 403},
	{"GET", "/v1/status", ``, 403},
	{"GET", "/v1/audit", ``, 403},
	{"GET", "/metrics", ``, 403},
	{"POST", "/v1/allowances", `{"bottle":"b1","provider":"claude","tokens":5}`, 200},
	{"DELETE", "/v1/allowances/al-none", ``, 404},
	{"GET", "/v1/events", ``, 403},
}

// TestPeerClientProcess is not a test on its own: run as another uid with
// peerEnv set, it sends peerRequests and prints the statuses it got.
func TestPeerClientProcess(t *testing.T) {
	sock := os.Getenv(peerEnv)
	if sock == "" {
		t.Skip("helper process for TestPermissionsOperatorVsOtherPeer")
	}
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	var got []int
	for _, r := range peerRequests {
		req, _ := http.NewRequest(r.method, "http://bottlecap"+r.path, strings.NewReader(r.body))
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		// Closed unread: an operator's GET /v1/events is a stream without end.
		resp.Body.Close()
		got = append(got, resp.StatusCode)
	}
	json.NewEncoder(os.Stdout).Encode(got)
}

func TestPermissionsOperatorVsOtherPeer(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run a client as nobody")
	}
	d := startDaemon(t, nil, nil)
	d.register("b1", api.BottleRequest{})
	out := runAsNobody(t, d)
	var got []int
	if err := json.NewDecoder(strings.NewReader(string(out))).Decode(&got); err != nil {
		t.Fatalf("peer output %q: %v", out, err)
	}
	for i, r := range peerRequests {
		if i >= len(got) || got[i] != r.want {
			t.Errorf("nobody %s %s: got %v, want %d", r.method, r.path, got, r.want)
		}
	}
	// The daemon's own uid (root here) may do everything.
	if status, _ := d.raw("GET", "/v1/bottles", "", ""); status != 200 {
		t.Errorf("operator GET /v1/bottles: got %d, want 200", status)
	}
	if v := d.verdict("b1", "", "claude"); v.Used != 7 || v.Held != 5 {
		t.Errorf("got %d tokens used and %d held from the unprivileged report and allowance, want 7 and 5", v.Used, v.Held)
	}
}

func TestSettingsOperatorsGrantUIDsAndGroups(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run a client as nobody")
	}
	group, err := user.LookupGroupId("65534")
	if err != nil {
		t.Skip("no group 65534 on this machine")
	}
	tests := []struct {
		name      string
		operators []string
		want      string
	}{
		{"not listed", []string{"1000", "wheel"}, "[200,200,403,"},
		{"uid listed", []string{"65534"}, "[200,200,200,"},
		{"primary group listed", []string{group.Name}, "[200,200,200,"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := budget.DefaultSettings()
			s.Operators = tt.operators
			d := startDaemon(t, s, nil)
			if out := runAsNobody(t, d); !strings.HasPrefix(out, tt.want) {
				t.Errorf("got %s, want statuses starting %s", out, tt.want)
			}
		})
	}
}

// TestPermissionsRootInAnotherPidNamespace runs the peer as root but in a
// pid namespace of its own that no container names: its origin is not
// established, so it is no operator and may not report; it may still ask
// the gate.
func TestPermissionsRootInAnotherPidNamespace(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to make a pid namespace")
	}
	d := startDaemon(t, nil, nil)
	d.register("b1", api.BottleRequest{})
	out := runPeer(t, d, &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID})
	if want := "[403,200,403,403,403,403,403,403,403,403,404,403]"; !strings.HasPrefix(out, want) {
		t.Errorf("root in another pid namespace: got %q, want statuses %s", out, want)
	}
	if v := d.verdict("b1", "", "claude"); v.Used != 0 || v.Held != 0 {
		t.Errorf("got %d tokens used and %d held from the refused report and allowance, want 0", v.Used, v.Held)
	}
}

// runAsNobody runs TestPeerClientProcess as uid/gid 65534 against d and
// returns the statuses it printed.
func runAsNobody(t *testing.T, d *daemon) string {
	t.Helper()
	return runPeer(t, d, &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}})
}

// runPeer runs TestPeerClientProcess with attr against d and returns the
// statuses it printed.
func runPeer(t *testing.T, d *daemon, attr *syscall.SysProcAttr) string {
	t.Helper()
	out, err := peerCommand(t, d, attr, "TestPeerClientProcess", peerEnv).Output()
	if err != nil {
		t.Fatalf("peer process: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}

// peerCommand is this test binary, copied where attr's user can run it,
// set to run only the helper test named, with env set to d's socket.
func peerCommand(t *testing.T, d *daemon, attr *syscall.SysProcAttr, helper, env string) *exec.Cmd {
	t.Helper()
	// Loosen the socket's file modes so that nobody can connect at all: what
	// is tested is the API's own check of peer credentials.
	for _, p := range []string{d.dir, filepath.Dir(d.sock)} {
		os.Chmod(p, 0o755)
	}
	os.Chmod(d.sock, 0o666)
	bin := filepath.Join(d.dir, "peer.test")
	testutil.CopyExecutable(t, os.Args[0], bin)
	cmd := exec.Command(bin, "-test.run=^"+helper+"$")
	cmd.Env = append(os.Environ(), env+"="+d.sock)
	cmd.Dir = d.dir
	cmd.SysProcAttr = attr
	return cmd
}
