package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/client/clienttest"
)

// allCommands is the path (below bottlecap) of every command of the tree,
// hidden ones and cobra's own (completion, help) included.
func allCommands(t *testing.T) [][]string {
	t.Helper()
	root := docsRoot()
	root.InitDefaultHelpCmd()
	var out [][]string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		out = append(out, path)
		for _, sub := range c.Commands() {
			walk(sub, append(append([]string{}, path...), sub.Name()))
		}
	}
	walk(root, nil)
	if len(out) < 30 {
		t.Fatalf("found %d commands, want the whole tree", len(out))
	}
	return out
}

// TestHelpEverywhere: --help, -h and `help CMD` print the command's help
// on stdout and exit 0 for every command, groups included, and run
// nothing: no request reaches the daemon, settings check checks nothing.
func TestHelpEverywhere(t *testing.T) {
	srv := clienttest.NewServer(t)
	env := map[string]string{"BOTTLECAP_SOCKET": srv.Socket}
	for _, path := range allCommands(t) {
		name := strings.TrimSpace("bottlecap " + strings.Join(path, " "))
		for _, args := range [][]string{append(path, "--help"), append(path, "-h"), append([]string{"help"}, path...)} {
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				r := runCLI(t, env, args...)
				wantCode(t, r, 0)
				if !strings.Contains(r.stdout, "USAGE") || !strings.Contains(r.stdout, name) || r.stderr != "" {
					t.Errorf("stdout:\n%s\nstderr:\n%s\nwant the help of %s on stdout only", r.stdout, r.stderr, name)
				}
			})
		}
	}
	r := runCLI(t, env, "settings", "check", "--help")
	if strings.Contains(r.stdout, ": ok") || strings.Contains(r.stderr, "no such file") {
		t.Errorf("settings check --help checked something:\n%s%s", r.stdout, r.stderr)
	}
	if n := len(srv.Requests()); n != 0 {
		t.Errorf("%d requests sent by --help, want 0", n)
	}
}

// TestNoArgumentsIsTheHelp: bottlecap alone prints the help, exit 0.
func TestNoArgumentsIsTheHelp(t *testing.T) {
	r := runCLI(t, nil)
	wantCode(t, r, 0)
	for _, want := range []string{"USAGE", "status", "cutoff", "completion"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("help lacks %q:\n%s", want, r.stdout)
		}
	}
}

// TestCompletionScripts: cobra's scripts for bash, zsh and fish, which
// complete by asking `bottlecap __complete`; bash parses its script.
func TestCompletionScripts(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		t.Run(shell, func(t *testing.T) {
			r := runCLI(t, nil, "completion", shell)
			wantCode(t, r, 0)
			if !strings.Contains(r.stdout, "bottlecap") || !strings.Contains(r.stdout, "__complete") || r.stderr != "" {
				t.Fatalf("stdout:\n%.400s\nstderr: %s\nwant a %s script that asks bottlecap __complete", r.stdout, r.stderr, shell)
			}
			if shell != "bash" {
				return
			}
			bash, err := exec.LookPath("bash")
			if err != nil {
				t.Skip("no bash to parse the script")
			}
			script := filepath.Join(t.TempDir(), "bottlecap.bash")
			if err := os.WriteFile(script, []byte(r.stdout), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(bash, "-n", script).CombinedOutput(); err != nil {
				t.Errorf("bash -n: %v\n%s", err, out)
			}
		})
	}
	r := runCLI(t, nil, "completion", "tcsh")
	wantCode(t, r, 2)
}

// TestCompletionInBash sources the bash script with the real binary on
// PATH and completes as bash would: `bottlecap st<TAB>` and `bottlecap
// bottle <TAB>`.
func TestCompletionInBash(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	// cobra's script stands on bash-completion, as every packaged one does
	// (make test-deps installs it).
	const bashCompletion = "/usr/share/bash-completion/bash_completion"
	if _, err := os.Stat(bashCompletion); err != nil {
		t.Skipf("no bash-completion (%v): apt-get install bash-completion", err)
	}
	bin := bottlecapBinary(t)
	complete := func(line string) string {
		script := `source ` + bashCompletion + `
source <(bottlecap completion bash)
COMP_LINE="$1"; COMP_POINT=${#COMP_LINE}; read -ra COMP_WORDS <<< "$COMP_LINE"
[[ "$COMP_LINE" == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
__start_bottlecap
printf '%s\n' "${COMPREPLY[@]}"`
		cmd := exec.Command(bash, "-c", script, "bash", line)
		cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(bin)+":"+os.Getenv("PATH"), "BOT_BOTTLE_HOME="+t.TempDir(), "BOTTLECAP_SOCKET=")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("complete %q: %v\n%s", line, err, out)
		}
		return string(out)
	}
	if got := complete("bottlecap st"); !strings.Contains(got, "status") {
		t.Errorf("bottlecap st<TAB>: got %q, want status", got)
	}
	got := complete("bottlecap bottle ")
	for _, want := range []string{"ls", "register", "rm", "show"} {
		if !strings.Contains(got, want) {
			t.Errorf("bottlecap bottle <TAB>: got %q, want %s among them", got, want)
		}
	}
}

// TestCompletionOfSlugs: an action's SLUG completes with the bottles the
// daemon knows.
func TestCompletionOfSlugs(t *testing.T) {
	srv := clienttest.NewServer(t)
	srv.Reply("GET /v1/bottles", 200, []api.Bottle{root, dev1})
	r := runCLI(t, map[string]string{"BOTTLECAP_SOCKET": srv.Socket}, "__complete", "kill", "")
	wantCode(t, r, 0)
	for _, want := range []string{"dev-1\tactive", "root\tcut_off"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("__complete kill: stdout lacks %q:\n%s", want, r.stdout)
		}
	}
}

// TestCLIDocsAreCurrent regenerates docs/cli.md from the command tree and
// fails when the committed file differs: run `make docs`.
func TestCLIDocsAreCurrent(t *testing.T) {
	var want bytes.Buffer
	writeMarkdown(&want, docsRoot())
	got, err := os.ReadFile(filepath.Join("..", "..", cliDocs))
	if err != nil {
		t.Fatalf("%v: run make docs", err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Errorf("%s is stale: run make docs (bottlecap gen-docs --markdown %s) and commit it", cliDocs, cliDocs)
	}
	for _, path := range allCommands(t) {
		if len(path) == 0 || path[0] == "help" || path[0] == "gen-docs" || strings.Join(path, " ") == "completion powershell" {
			continue
		}
		if heading := "\n## bottlecap " + strings.Join(path, " ") + "\n"; !strings.Contains(want.String(), heading) {
			t.Errorf("the reference has no section %q", strings.TrimSpace(heading))
		}
	}
}

// TestGenDocs writes the man pages and the markdown through the hidden
// command, as make install and make docs do.
func TestGenDocs(t *testing.T) {
	dir := t.TempDir()
	md := filepath.Join(dir, "cli.md")
	r := runCLI(t, nil, "gen-docs", "--man", filepath.Join(dir, "man"), "--markdown", md)
	wantCode(t, r, 0)
	for page, want := range map[string]string{
		"bottlecap.1":            `.TH "BOTTLECAP" "1"`,
		"bottlecap-kill.1":       `\fB--wait\fP`,
		"bottlecap-bottle.1":     "register",
		"bottlecap-budget-set.1": "SCOPE",
	} {
		b, err := os.ReadFile(filepath.Join(dir, "man", page))
		if err != nil || !strings.Contains(string(b), want) {
			t.Errorf("%s: %v, want it to contain %q", page, err, want)
		}
	}
	if b, err := os.ReadFile(md); err != nil || !strings.Contains(string(b), "## bottlecap kill") {
		t.Errorf("markdown: %v", err)
	}
	wantCode(t, runCLI(t, nil, "gen-docs"), 2)
}

// TestJSONEverywhere: every command that prints data prints JSON with
// --json, in the API's own shape.
func TestJSONEverywhere(t *testing.T) {
	srv := clienttest.NewServer(t)
	one := api.Budget{Scope: "bottle", ID: "dev-1", Limits: budget.Limits{"claude": budget.Lifetime(1000)}}
	act := api.Action{ID: 7, Bottle: "dev-1", Kind: "cutoff", Status: "pending", Operator: true}
	srv.Reply("GET /v1/bottles/{slug}", 200, dev1)
	srv.Reply("PUT /v1/bottles/{slug}", 200, dev1)
	srv.Reply("PUT /v1/budgets/{scope}/{id...}", 200, one)
	srv.Reply("DELETE /v1/budgets/{scope}/{id...}", 200, one)
	srv.Reply("POST /v1/bottles/{slug}/actions", 202, act)
	srv.Reply("GET /v1/actions", 200, []api.Action{act})
	srv.Reply("GET /v1/status", 200, status)
	tests := []struct {
		args []string
		want string // a key or value the JSON must carry
	}{
		{[]string{"bottle", "show", "dev-1"}, `"slug": "dev-1"`},
		{[]string{"bottle", "register", "dev-1"}, `"slug": "dev-1"`},
		{[]string{"budget", "set", "bottle/dev-1", "claude=1k"}, `"scope": "bottle"`},
		{[]string{"budget", "rm", "bottle/dev-1", "claude"}, `"scope": "bottle"`},
		{[]string{"cutoff", "dev-1"}, `"status": "pending"`},
		{[]string{"actions"}, `"action": "cutoff"`},
		{[]string{"status"}, `"daemon": {` + "\n" + `    "running": true,` + "\n" + `    "socket": "` + srv.Socket + `"`},
		{[]string{"status"}, `"version": "0.1.0"`},
		{[]string{"version"}, `"version": "`},
		{[]string{"usage", "parse", filepath.Join(usageTestdata, "anthropic-messages-stream-tooluse.sse")}, `"format": "anthropic"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := runCLI(t, map[string]string{"BOTTLECAP_SOCKET": srv.Socket}, append(tt.args, "--json")...)
			wantCode(t, r, 0)
			if !json.Valid([]byte(r.stdout)) || !strings.Contains(r.stdout, tt.want) {
				t.Errorf("stdout:\n%s\nwant JSON with %s", r.stdout, tt.want)
			}
		})
	}
}

// TestVersionJSON: the version's parts, as `version` prints them.
func TestVersionJSON(t *testing.T) {
	const rev = "7fccc6523dea752cffd713b024bdf7d6abf97e65"
	fakeBuild(t, "v1.4.0", rev, nil)
	r := runCLI(t, nil, "version", "--json")
	wantCode(t, r, 0)
	var got versionJSON
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got.Version != "v1.4.0" || got.Commit != rev ||
		got.Go != runtime.Version() || got.Platform != runtime.GOOS+"/"+runtime.GOARCH {
		t.Errorf("stdout:\n%s\nwant v1.4.0 at %s (%v)", r.stdout, rev, err)
	}
}

// TestUsageParseJSONFlag: --json is accepted and prints what usage parse
// prints without it.
func TestUsageParseJSONFlag(t *testing.T) {
	file := filepath.Join(usageTestdata, "anthropic-messages-stream-tooluse.sse")
	plain, withFlag := runCLI(t, nil, "usage", "parse", file), runCLI(t, nil, "usage", "parse", "--json", file)
	wantCode(t, withFlag, 0)
	if plain.stdout != withFlag.stdout || !json.Valid([]byte(withFlag.stdout)) {
		t.Errorf("without --json:\n%s\nwith:\n%s", plain.stdout, withFlag.stdout)
	}
}
