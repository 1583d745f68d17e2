package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSettingsCheck(t *testing.T) {
	dir := t.TempDir()
	bad := writeSettings(t, dir, "bad.yml", "precedence: nearest\nbudget:\n  claude: 5Q\n")
	unknown := writeSettings(t, dir, "unknown.yml", "budgets:\n  claude: 5M\n")
	missing := filepath.Join(dir, "none.yml")
	tests := []struct {
		name, file string
		wantCode   int
		want       string
	}{
		{"the shipped example", "../../settings.example.yml", 0, "ok (precedence nearest"},
		{"a bad token amount", bad, 1, "bad.yml:3:11: budget.claude"},
		{"an unknown key", unknown, 1, "unknown.yml:1:1: budgets"},
		{"a missing file", missing, 1, "bottlecap settings check: " + missing + ": no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			m := &Main{Stdout: &out, Stderr: &out, Getenv: homeEnv(t)}
			code := m.Run(context.Background(), []string{"settings", "check", tt.file})
			if code != tt.wantCode || !strings.Contains(out.String(), tt.want) {
				t.Errorf("got exit %d and %q, want exit %d mentioning %q", code, out.String(), tt.wantCode, tt.want)
			}
		})
	}
}

// TestSettingsCheckDefaultPath: without FILE it checks the home's
// settings.yml, and says when there is none rather than "ok".
func TestSettingsCheckDefaultPath(t *testing.T) {
	home := t.TempDir()
	r := runCLI(t, map[string]string{"BOT_BOTTLE_HOME": home}, "settings", "check")
	wantCode(t, r, 1)
	if want := filepath.Join(home, "settings.yml") + ": no such file"; !strings.Contains(r.stderr, want) || r.stdout != "" {
		t.Errorf("stdout %q, stderr %q; want nothing on stdout and stderr naming %q", r.stdout, r.stderr, want)
	}
	writeSettings(t, home, "settings.yml", "precedence: strict\n")
	r = runCLI(t, map[string]string{"BOT_BOTTLE_HOME": home}, "settings", "check")
	wantCode(t, r, 0)
	if !strings.Contains(r.stdout, "settings.yml: ok (precedence strict") {
		t.Errorf("stdout %q", r.stdout)
	}
}

// TestSettingsCheckWarns: a provider name one letter off a known one, and
// an operator group the host does not have, are warnings on stderr; the
// file is still ok (exit 0). Names that are known, far from any, or uids
// are not warned about.
func TestSettingsCheckWarns(t *testing.T) {
	dir := t.TempDir()
	file := writeSettings(t, dir, "settings.yml", `budget:
  claud: 5M
  codex: 1M
  pi: 1M
providers:
  pi: ollama
bottles:
  dev:
    budget:
      codx: 1M
agents:
  reviewer:
    rate:
      gemni: 100k/min
operators:
  - 1000
  - root
  - bottlecap-no-such-group
`)
	r := runCLI(t, nil, "settings", "check", file)
	wantCode(t, r, 0)
	if !strings.Contains(r.stdout, file+": ok (") {
		t.Errorf("stdout %q, want ok", r.stdout)
	}
	for _, want := range []string{
		`budget: provider "claud" is not known; did you mean "claude"?`,
		`bottles: dev: budget: provider "codx" is not known; did you mean "codex"?`,
		`agents: reviewer: rate: provider "gemni" is not known; did you mean "gemini"?`,
		`operators: group "bottlecap-no-such-group" does not exist on this host`,
	} {
		if !strings.Contains(r.stderr, "warning: "+file+": "+want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	for _, not := range []string{`"codex" is not known`, `"pi"`, `"1000"`, `group "root"`} {
		if strings.Contains(r.stderr, not) {
			t.Errorf("stderr warns about %s:\n%s", not, r.stderr)
		}
	}
	if n := strings.Count(r.stderr, "\n"); n != 4 {
		t.Errorf("got %d lines on stderr, want the 4 warnings:\n%s", n, r.stderr)
	}
}

func TestSettingsCheckJSON(t *testing.T) {
	dir := t.TempDir()
	file := writeSettings(t, dir, "settings.yml", "budget:\n  claud: 5M\n")
	r := runCLI(t, nil, "settings", "check", file, "--json")
	wantCode(t, r, 0)
	var got settingsCheck
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || !got.OK || got.Path != file || len(got.Warnings) != 1 ||
		!strings.Contains(got.Warnings[0], `did you mean "claude"`) || !strings.Contains(got.Summary, "precedence nearest") {
		t.Errorf("stdout:\n%s\nwant ok with one warning (%v)", r.stdout, err)
	}
	missing := filepath.Join(dir, "none.yml")
	r = runCLI(t, nil, "settings", "check", missing, "--json")
	wantCode(t, r, 1)
	got = settingsCheck{}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got.OK || got.Path != missing || !strings.Contains(got.Error, "no such file") || got.Warnings == nil {
		t.Errorf("stdout:\n%s\nwant not ok naming the missing file (%v)", r.stdout, err)
	}
}

func TestEditDistance(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{{"claud", "claude", 1}, {"cluade", "claude", 2}, {"", "abc", 3}, {"codex", "codex", 0}, {"kitten", "sitting", 3}} {
		if got := editDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

func writeSettings(t *testing.T, dir, name, body string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
