package controller

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

const testContainerID = "3f4e5d6c7b8a9f0e1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a7f8e9d0c1b2a3f4e"

func TestNSpidLevels(t *testing.T) {
	tests := []struct {
		name, status string
		want         int
		wantErr      bool
	}{
		{"host process", "Name:\tbash\nNSpid:\t4242\nNSpgid:\t4242\n", 1, false},
		{"in a container", "Name:\tprog\nNSpid:\t4242\t1\n", 2, false},
		{"nested twice", "NSpid:\t4242\t17\t1\n", 3, false},
		{"no NSpid line (kernel before 4.1)", "Name:\tbash\nPid:\t4242\n", 0, true},
		{"empty NSpid line", "NSpid:\t\n", 0, true},
		{"garbage in NSpid", "NSpid:\t4242\tx\n", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := nsPidLevels([]byte(tt.status))
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("got %d, %v; want %d, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	hostCgroup := []byte("0::/user.slice/user-1000.slice/session-2.scope\n")
	dockerCgroup := []byte("0::/system.slice/docker-" + testContainerID + ".scope\n")
	tests := []struct {
		name          string
		facts         procFacts
		wantHost      bool
		wantContainer string
		wantUnknown   string // a fragment of the reason
	}{
		{"host pid namespace, host cgroup", procFacts{pidLevels: 1, cgroup: hostCgroup}, true, "", ""},
		{"container pid namespace, docker cgroup", procFacts{pidLevels: 2, cgroup: dockerCgroup}, false, testContainerID, ""},
		{"--pid=host container: host pid namespace, docker cgroup", procFacts{pidLevels: 1, cgroup: dockerCgroup}, false, testContainerID, ""},
		{"another pid namespace no container names", procFacts{pidLevels: 2, cgroup: hostCgroup}, false, "", "another pid namespace"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := classify(tt.facts)
			if got.host != tt.wantHost || got.container != tt.wantContainer || !strings.Contains(got.unknown, tt.wantUnknown) ||
				(tt.wantUnknown == "") != (got.unknown == "") {
				t.Errorf("got %+v, want host %v, container %q, unknown containing %q", got, tt.wantHost, tt.wantContainer, tt.wantUnknown)
			}
		})
	}
}

// originHelperEnv, when set to a socket path, makes TestOriginHelperProcess
// connect to it; with originHelperWait it then waits for its stdin to close.
const (
	originHelperEnv  = "BOTTLECAP_TEST_ORIGIN_SOCKET"
	originHelperWait = "BOTTLECAP_TEST_ORIGIN_WAIT"
)

// TestOriginHelperProcess is not a test on its own: it is the peer process
// the origin tests start.
func TestOriginHelperProcess(t *testing.T) {
	sock := os.Getenv(originHelperEnv)
	if sock == "" {
		t.Skip("helper process for the peer origin tests")
	}
	c, err := net.Dial("unix", sock)
	if err != nil {
		os.Exit(2)
	}
	if os.Getenv(originHelperWait) == "" {
		os.Exit(0) // the connection stays queued; its process is gone
	}
	os.Stdout.WriteString("connected\n")
	bufio.NewReader(os.Stdin).ReadString('\n')
	c.Close()
	os.Exit(0)
}

// listenForOrigin is a unix listener on a short path for one test.
func listenForOrigin(t *testing.T) (*net.UnixListener, string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "bco")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "s.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, sock
}

func acceptPeer(t *testing.T, l *net.UnixListener) Peer {
	t.Helper()
	c, err := l.AcceptUnix()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p, err := peerOf(c)
	if err != nil {
		t.Fatalf("peer credentials: %v", err)
	}
	return p
}

func TestPeerOriginOfAHostProcess(t *testing.T) {
	l, sock := listenForOrigin(t)
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := acceptPeer(t, l)
	if CheckPeerPidfd() != nil {
		if p.Host || p.Unknown == "" {
			t.Errorf("without SO_PEERPIDFD: got %+v, want an unknown origin", p)
		}
		return
	}
	if !p.Host || p.Container != "" || p.Unknown != "" || p.PID != os.Getpid() {
		t.Errorf("this test process: got %+v, want a host peer with pid %d", p, os.Getpid())
	}
}

// TestPeerOriginOfAReapedProcess is the race of the hardening issue made
// deterministic: the connecting process exits and is reaped before the
// daemon accepts, so its /proc entry is gone (and its pid free for
// reuse). The origin must be unknown, never "host".
func TestPeerOriginOfAReapedProcess(t *testing.T) {
	l, sock := listenForOrigin(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestOriginHelperProcess$")
	cmd.Env = append(os.Environ(), originHelperEnv+"="+sock)
	if out, err := cmd.CombinedOutput(); err != nil { // Wait reaps it
		t.Fatalf("helper: %v\n%s", err, out)
	}
	p := acceptPeer(t, l)
	if p.Host || p.Container != "" || p.Unknown == "" {
		t.Errorf("a reaped peer: got %+v, want an unknown origin", p)
	}
	if CheckPeerPidfd() == nil && !strings.Contains(p.Unknown, "exited") {
		t.Errorf("a reaped peer: got reason %q, want one saying it exited", p.Unknown)
	}
}

// TestPeerOriginInAnotherPidNamespace runs the peer in a new pid namespace
// outside any container: it is not the host, so its origin is unknown.
func TestPeerOriginInAnotherPidNamespace(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to make a pid namespace")
	}
	l, sock := listenForOrigin(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestOriginHelperProcess$")
	cmd.Env = append(os.Environ(), originHelperEnv+"="+sock, originHelperWait+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot make a pid namespace here: %v", err)
	}
	defer cmd.Wait()
	defer stdin.Close()
	if line, _ := bufio.NewReader(stdout).ReadString('\n'); line != "connected\n" {
		t.Fatalf("helper said %q, want connected", line)
	}
	p := acceptPeer(t, l)
	if p.Host || p.Unknown == "" {
		t.Errorf("a peer in another pid namespace: got %+v, want an unknown origin", p)
	}
	if CheckPeerPidfd() == nil && !strings.Contains(p.Unknown, "pid namespace") {
		t.Errorf("got reason %q, want one naming the pid namespace", p.Unknown)
	}
}
