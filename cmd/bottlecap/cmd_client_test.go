package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/client/clienttest"
)

func init() {
	// Daemon-down answers come after the retry budget; keep tests quick but
	// still long enough to ride over a daemon that is starting.
	cliRetry = 200 * time.Millisecond
}

// result is what one command line did.
type result struct {
	code           int
	stdout, stderr string
}

// runCLI runs a command line in-process with a fresh home and env; env's
// _stdin is its standard input, and _tty set makes that a terminal.
func runCLI(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	if env == nil {
		env = map[string]string{}
	}
	if _, ok := env["BOT_BOTTLE_HOME"]; !ok {
		env["BOT_BOTTLE_HOME"] = t.TempDir()
	}
	var out, errOut bytes.Buffer
	m := &Main{Stdin: strings.NewReader(env["_stdin"]), Stdout: &out, Stderr: &errOut, Getenv: func(k string) string { return env[k] },
		StdinIsTerminal: func() bool { return env["_tty"] != "" }}
	code := m.Run(context.Background(), args)
	return result{code, out.String(), errOut.String()}
}

// homeEnv is an environment with a fresh BOT_BOTTLE_HOME and nothing else,
// for a Main run in-process: with no home given it would fall back on
// ~/.bot-bottle or a shared directory, and the socket in it.
func homeEnv(t *testing.T) func(string) string {
	env := map[string]string{"BOT_BOTTLE_HOME": t.TempDir()}
	return func(k string) string { return env[k] }
}

// runAt runs a command line against the fake daemon's socket via --socket.
func runAt(t *testing.T, srv *clienttest.Server, args ...string) result {
	t.Helper()
	return runCLI(t, nil, append(args, "--socket", srv.Socket)...)
}

func wantCode(t *testing.T, r result, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, code, r.stdout, r.stderr)
	}
}

func TestSocketResolution(t *testing.T) {
	srv := clienttest.NewServer(t)
	srv.Reply("GET /v1/status", 200, map[string]any{"version": "x"})
	home := t.TempDir()
	settings := "socket: " + srv.Socket + "\n"
	if err := os.WriteFile(filepath.Join(home, "settings.yml"), []byte(settings), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		code int
	}{
		{"flag", map[string]string{"BOTTLECAP_SOCKET": "/nonexistent.sock"}, []string{"--socket", srv.Socket}, 0},
		{"env", map[string]string{"BOTTLECAP_SOCKET": srv.Socket}, nil, 0},
		{"settings", map[string]string{"BOT_BOTTLE_HOME": home}, nil, 0},
		{"env over settings", map[string]string{"BOT_BOTTLE_HOME": home, "BOTTLECAP_SOCKET": "/nonexistent.sock"}, nil, 1},
		{"default", nil, nil, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, tt.env, append([]string{"status", "--json"}, tt.args...)...)
			wantCode(t, r, tt.code)
		})
	}
}

func TestBrokenSettingsFallsBackToDefaultSocket(t *testing.T) {
	home, err := os.MkdirTemp("", "bc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(home) })
	if err := os.WriteFile(filepath.Join(home, "settings.yml"), []byte("nope: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, map[string]string{"BOT_BOTTLE_HOME": home}, "status")
	wantCode(t, r, 1)
	sock := filepath.Join(home, "run", "bottlecap.sock")
	if !strings.Contains(r.stderr, "warning") || !strings.Contains(r.stderr, "nope") || !strings.Contains(r.stderr, sock) {
		t.Errorf("stderr does not warn about the settings and name the default socket:\n%s", r.stderr)
	}
}

// TestDaemonDown runs every daemon command with nobody listening: each must
// name the socket, say how to start the daemon, and exit 1. With --json,
// stdout has {"daemon": {"running": false, "socket": …, "error": …}};
// without, nothing.
func TestDaemonDown(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "run", "bottlecap.sock")
	cmds := [][]string{
		{"status"}, {"status", "--json"},
		{"report", "--id", "r1", "--bottle", "dev-1", "--input", "10"}, {"report", "--id", "r1", "--bottle", "dev-1", "--input", "10", "--json"},
		{"bottle", "register", "dev-1"}, {"bottle", "register", "dev-1", "--json"}, {"bottle", "ls"}, {"bottle", "ls", "--json"},
		{"bottle", "show", "dev-1"}, {"bottle", "show", "dev-1", "--json"}, {"bottle", "rm", "dev-1"},
		{"budget", "set", "global", "claude=5M"}, {"budget", "get"}, {"budget", "get", "--json"}, {"budget", "get", "bottle/dev-1"},
		{"budget", "ls"}, {"budget", "ls", "--json"}, {"budget", "rm", "bottle/dev-1", "claude"},
		{"cutoff", "dev-1"}, {"pause", "dev-1"}, {"freeze", "dev-1"}, {"kill", "dev-1"}, {"restore", "dev-1"},
		{"kill", "dev-1", "--json", "--wait"},
		{"actions"}, {"actions", "--json"}, {"audit"}, {"audit", "--json"}, {"audit", "verify"}, {"audit", "verify", "--json"},
	}
	want := "cannot reach the bottlecap daemon at " + sock + " (connect: no such file or directory): is it running? Start it with \"bottlecap serve\" (or \"make run\")."
	for _, args := range cmds {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			r := runCLI(t, map[string]string{"BOTTLECAP_SOCKET": sock}, args...)
			wantCode(t, r, 1)
			if !strings.Contains(r.stderr, want) {
				t.Errorf("stderr:\n%s\nwant it to contain:\n%s", r.stderr, want)
			}
			if !slices.Contains(args, "--json") {
				if r.stdout != "" {
					t.Errorf("stdout: %q, want nothing", r.stdout)
				}
				return
			}
			var got map[string]daemonState
			if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || len(got) != 1 ||
				got["daemon"] != (daemonState{Running: false, Socket: sock, Error: want}) {
				t.Errorf("stdout:\n%s\nwant {\"daemon\": {\"running\": false, \"socket\": %q, \"error\": …}} (%v)", r.stdout, sock, err)
			}
		})
	}
}

// TestBadCommandLines are usage errors: exit 2, one line that says what
// to fix and one that says where the usage is (never the usage itself),
// and nothing sent.
func TestBadCommandLines(t *testing.T) {
	srv := clienttest.NewServer(t)
	tests := []struct {
		args []string
		cmd  string // the command the error names
		want string
	}{
		{[]string{"status", "extra"}, "status", `unexpected argument "extra"`},
		{[]string{"status", "--bogus"}, "status", "unknown flag: --bogus"},
		{[]string{"bottle"}, "bottle", "missing command: want ls, register, rm, show"},
		{[]string{"bottle", "launch"}, "bottle", `unknown command "launch" for "bottlecap bottle"`},
		{[]string{"bottle", "show"}, "bottle show", "missing argument SLUG"},
		{[]string{"bottle", "register", "dev 1"}, "bottle register", `bottle "dev 1"`},
		{[]string{"bottle", "register", "dev-1", "--shutdown", "explode"}, "bottle register", "want cutoff, pause, freeze or kill"},
		{[]string{"bottle", "register", "dev-1", "--rate", "claude=300k"}, "bottle register", `invalid argument "claude=300k" for "--rate" flag: claude: invalid: "300k" has no unit`},
		{[]string{"bottle", "register", "dev-1", "--rate", "claude=300k/h"}, "bottle register", "a rate guard is per minute only"},
		{[]string{"bottle", "register", "dev-1", "--rate", "claude"}, "bottle register", "want provider=rate"},
		{[]string{"bottle", "register", "dev-1", "--rate", ","}, "bottle register", "no provider=rate given"},
		{[]string{"pause"}, "pause", "missing argument SLUG"},
		{[]string{"bottle", "register", "dev-1", "--budget", "claude"}, "bottle register", "want provider=amount"},
		{[]string{"bottle", "register", "dev-1", "--agent-budget", "claude=1M"}, "bottle register", "want agent:provider=amount"},
		{[]string{"budget", "set", "global"}, "budget set", "missing argument PROVIDER=LIMIT"},
		{[]string{"budget", "set", "parent/x", "claude=1M"}, "budget set", "want global, bottle or agent"},
		{[]string{"budget", "set", "agent/dev-1", "claude=1M"}, "budget set", "want global, bottle/SLUG or agent/SLUG/AGENT"},
		{[]string{"budget", "set", "global", "claude=lots"}, "budget set", `"lots" is not a token amount`},
		{[]string{"budget", "frob"}, "budget", `unknown command "frob" for "bottlecap budget"`},
		{[]string{"cutoff"}, "cutoff", "missing argument SLUG"},
		{[]string{"kill", "a", "b"}, "kill", `unexpected argument "b"`},
		{[]string{"kill", "dev-1", "--timeout", "1m"}, "kill", "give --wait too"},
		{[]string{"kill", "dev-1", "--wait", "--timeout", "0s"}, "kill", "want a positive duration"},
		{[]string{"actions", "--status", "weird"}, "actions", "want pending, done or failed"},
		{[]string{"audit", "--limit", "-1"}, "audit", "want 0 or more"},
		{[]string{"audit", "verfiy"}, "audit", `unknown command "verfiy" for "bottlecap audit"; did you mean 'verify'?`},
		{[]string{"report", "--bottle", "dev-1"}, "report", "--id is required"},
		{[]string{"report", "--id", "x"}, "report", "--bottle is required"},
		{[]string{"report", "--id", "x", "--bottle", "b", "--input", "ten"}, "report", `invalid argument "ten" for "--input" flag`},
		{[]string{"report", "--id", "x", "--bottle", "b", "--raw", "f", "--input", "1"}, "report", "either --raw or token counts"},
		{[]string{"report", "--id", "x", "--bottle", "b", "--format", "gemini"}, "report", "give --raw FILE too"},
		{[]string{"report", "--id", "x", "--bottle", "b", "--ts", "yesterday"}, "report", `invalid argument "yesterday" for "--ts" flag`},
		{[]string{"stauts"}, "", `unknown command "stauts" for "bottlecap"; did you mean 'status'?`},
		{[]string{"settings", "chek"}, "settings", `did you mean 'check'?`},
		{[]string{"help", "stauts"}, "help", `unknown command "stauts" for "bottlecap"; did you mean 'status'?`},
		{[]string{"completion", "tcsh"}, "completion", `unknown command "tcsh" for "bottlecap completion"`},
		{[]string{"completion", "bash", "extra"}, "completion bash", `unexpected argument "extra"`},
		{[]string{"version", "--bogus"}, "version", "unknown flag: --bogus"},
		{[]string{"--version", "extra"}, "", `unknown command "extra" for "bottlecap"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := runCLI(t, map[string]string{"BOTTLECAP_SOCKET": srv.Socket}, tt.args...)
			wantCode(t, r, 2)
			wantShortUsageError(t, r, tt.cmd, tt.want)
		})
	}
	if n := len(srv.Requests()); n != 0 {
		t.Errorf("%d requests sent for bad command lines, want 0", n)
	}
}

// wantShortUsageError checks a usage error's stderr: "bottlecap CMD: …"
// containing want, then where to read the usage, and nothing else.
func wantShortUsageError(t *testing.T, r result, cmd, want string) {
	t.Helper()
	path := strings.TrimSpace("bottlecap " + cmd)
	lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], path+": ") || !strings.Contains(lines[0], want) ||
		!strings.HasPrefix(lines[1], "Run 'bottlecap") || !strings.HasSuffix(lines[1], " --help' for usage.") {
		t.Errorf("stderr:\n%s\nwant two lines: %q naming %q, then \"Run 'bottlecap … --help' for usage.\"", r.stderr, path+": …", want)
	}
	if r.stdout != "" {
		t.Errorf("stdout %q, want nothing", r.stdout)
	}
}

func TestFlagsAfterArguments(t *testing.T) {
	srv := clienttest.NewServer(t)
	srv.Reply("GET /v1/bottles/{slug}", 200, map[string]any{"slug": "dev-1", "state": "active"})
	r := runCLI(t, nil, "bottle", "show", "dev-1", "--socket", srv.Socket, "--json")
	wantCode(t, r, 0)
	if !strings.HasPrefix(r.stdout, "{\n  \"slug\": \"dev-1\"") {
		t.Errorf("stdout: %s", r.stdout)
	}
}

func TestDaemonErrorExitsOne(t *testing.T) {
	srv := clienttest.NewServer(t)
	srv.Fail("GET /v1/bottles/{slug}", 404, `bottle "ghost" is not known`)
	r := runAt(t, srv, "bottle", "show", "ghost")
	wantCode(t, r, 1)
	if got, want := r.stderr, "bottlecap bottle show: bottle \"ghost\" is not known\n"; got != want {
		t.Errorf("stderr: got %q, want %q", got, want)
	}
}
