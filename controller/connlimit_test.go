package controller_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"github.com/bot-bottle/bottlecap/internal/testutil"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/controller"
)

// limitsPeerEnv, when set to "<mode> <socket> <n>", makes
// TestLimitsPeerProcess act as another uid's process for
// TestPeerOverItsConnectionCapCannotStarveOthers.
const limitsPeerEnv = "BOTTLECAP_TEST_LIMITS_PEER"

// TestLimitsPeerProcess is not a test on its own. In mode "flood" it opens
// n connections and holds them, opens one more and prints what the daemon
// answered on it, then waits for its stdin to close. In mode "verdict" it
// asks the gate once and prints the status.
func TestLimitsPeerProcess(t *testing.T) {
	args := strings.Fields(os.Getenv(limitsPeerEnv))
	if len(args) != 3 {
		t.Skip("helper process for TestPeerOverItsConnectionCapCannotStarveOthers")
	}
	mode, sock := args[0], args[1]
	n, _ := strconv.Atoi(args[2])
	switch mode {
	case "flood":
		for range n {
			c, err := net.Dial("unix", sock)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
		}
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(hangGuard))
		b, err := io.ReadAll(c)
		json.NewEncoder(os.Stdout).Encode(map[string]string{"reply": string(b), "err": fmt.Sprint(err)})
		io.Copy(io.Discard, os.Stdin) // hold the connections until told
	case "verdict":
		hc := &http.Client{Timeout: hangGuard, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
		resp, err := hc.Get("http://bottlecap/v1/verdict?bottle=b1&provider=claude")
		if err != nil {
			fmt.Println(err)
			return
		}
		resp.Body.Close()
		fmt.Println(resp.StatusCode)
	}
}

// A peer that opens connections up to its cap and keeps them cannot take
// the socket from anyone else: its next connection is refused with a 503
// naming the cap, while another uid and the operator still get verdicts.
func TestPeerOverItsConnectionCapCannotStarveOthers(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run peers as other uids")
	}
	// The flooder's connections send nothing; a long header timeout keeps
	// them open for the whole test.
	d := startLimited(t, controller.Limits{MaxConnsPerPeer: 4, ReadHeaderTimeout: time.Minute})
	d.register("b1", api.BottleRequest{})
	loosenSocketModes(d)

	flood := limitsPeer(t, d, 65534, "flood 4")
	stdin, _ := flood.StdinPipe()
	stdout, _ := flood.StdoutPipe()
	if err := flood.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); flood.Wait() }()
	var got struct{ Reply, Err string }
	if err := json.NewDecoder(bufio.NewReader(stdout)).Decode(&got); err != nil {
		t.Fatalf("flooding peer: %v", err)
	}
	if !strings.HasPrefix(got.Reply, "HTTP/1.1 503") || !strings.Contains(got.Reply, "too many connections from uid 65534 (4 open, the cap)") {
		t.Fatalf("connection past the cap: got %q (%s), want a 503 naming the peer and its cap", got.Reply, got.Err)
	}

	// While uid 65534 holds its 4 connections:
	out, err := limitsPeer(t, d, 65533, "verdict 0").Output()
	if status, _, _ := strings.Cut(string(out), "\n"); err != nil || status != "200" {
		t.Errorf("another uid's verdict: got %q (%v), want 200", out, err)
	}
	if v := d.verdict("b1", "", "claude"); !v.Allowed {
		t.Errorf("operator's verdict: got %+v, want allowed", v)
	}
	if n := d.metric("bottlecap_connections_refused_total"); n != 1 {
		t.Errorf("got %v refused connections, want 1", n)
	}
}

// limitsPeer prepares TestLimitsPeerProcess run as uid (and gid) against d.
func limitsPeer(t *testing.T, d *daemon, uid uint32, args string) *exec.Cmd {
	t.Helper()
	bin := filepath.Join(d.dir, "limits-peer.test")
	if _, err := os.Stat(bin); err != nil {
		testutil.CopyExecutable(t, os.Args[0], bin)
	}
	cmd := exec.Command(bin, "-test.run=^TestLimitsPeerProcess$")
	mode, n, _ := strings.Cut(args, " ")
	cmd.Env = append(os.Environ(), limitsPeerEnv+"="+mode+" "+d.sock+" "+n)
	cmd.Dir = d.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	return cmd
}

// loosenSocketModes lets any uid connect: what is tested is the daemon's
// own limits, not the socket's file modes.
func loosenSocketModes(d *daemon) {
	for _, p := range []string{d.dir, filepath.Dir(d.sock)} {
		os.Chmod(p, 0o755)
	}
	os.Chmod(d.sock, 0o666)
}
