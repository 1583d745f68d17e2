package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
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

// TestSettingsCheckFleet: a fleet member's check sums up the fleet on a
// second line and in --json, naming where the DSN comes from but never
// printing it, password and all.
func TestSettingsCheckFleet(t *testing.T) {
	const password = "s3cret-pw"
	dir := t.TempDir()
	full := writeSettings(t, dir, "full.yml", "fleet:\n  postgres: postgres://bottlecap:"+password+"@db.internal:5432/bottlecap\n"+
		"  host: build-box-1\n  timezone: Europe/Paris\n  budget:\n    claude: 20M/month\n    codex: [5M/day, 50M/month]\n  fail_open: true\n  lease: 50k\n")
	bare := writeSettings(t, dir, "bare.yml", "fleet:\n  host: ci-2\n")
	odd := writeSettings(t, dir, "odd.yml", "fleet:\n  host: ci-3\n  budget:\n    claude: 1234567\n")
	alone := writeSettings(t, dir, "alone.yml", "precedence: strict\n")
	envDSN := "host=db.internal user=bottlecap password=" + password
	tests := []struct {
		name, file, env string
		want            []string
		wantWarning     string
	}{
		{"from the file", full, "", []string{`fleet: host "build-box-1" (fleet.host), DSN from fleet.postgres, ` +
			"budget claude 20M/month, codex 5M/day+50M/month, timezone Europe/Paris, fail_open true, lease 50k"}, ""},
		{"the environment over the file", full, envDSN, []string{"DSN from $BOTTLECAP_FLEET_DSN, over fleet.postgres"}, ""},
		{"no DSN anywhere", bare, "", []string{`fleet: host "ci-2" (fleet.host), no DSN (set fleet.postgres or $BOTTLECAP_FLEET_DSN), ` +
			"budget none (the fleet only ships usage), timezone UTC, fail_open false, lease default (a fiftieth of each provider's smallest fleet limit)"},
			"no postgres: DSN, and $BOTTLECAP_FLEET_DSN is not set"},
		{"an amount no unit writes exactly", odd, envDSN, []string{"budget claude 1234567, timezone"}, ""},
		{"the environment alone", alone, envDSN, []string{"(this machine's hostname), DSN from $BOTTLECAP_FLEET_DSN, budget none"}, ""},
		{"a bad DSN in the environment", alone, "db.internal", []string{"DSN from $BOTTLECAP_FLEET_DSN"}, "$BOTTLECAP_FLEET_DSN: not a Postgres DSN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"BOTTLECAP_FLEET_DSN": tt.env}
			r := runCLI(t, env, "settings", "check", tt.file)
			wantCode(t, r, 0)
			lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
			if len(lines) != 2 || !strings.Contains(lines[0], ": ok (precedence") {
				t.Fatalf("stdout:\n%s\nwant the ok line, then the fleet's", r.stdout)
			}
			for _, want := range tt.want {
				if !strings.Contains(lines[1], want) {
					t.Errorf("fleet line %q, want it to hold %q", lines[1], want)
				}
			}
			if (tt.wantWarning == "") != (r.stderr == "") || !strings.Contains(r.stderr, tt.wantWarning) {
				t.Errorf("stderr %q, want a warning holding %q (none when empty)", r.stderr, tt.wantWarning)
			}
			r = runCLI(t, env, "settings", "check", tt.file, "--json")
			wantCode(t, r, 0)
			var got settingsCheck
			if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got.Fleet == nil || got.Fleet.Host == "" {
				t.Fatalf("--json:\n%s\nwant a fleet (%v)", r.stdout, err)
			}
			if strings.Contains(r.stdout+r.stderr, password) || strings.Contains(r.stdout+r.stderr, "db.internal") {
				t.Errorf("the DSN leaked:\nstdout %s\nstderr %s", r.stdout, r.stderr)
			}
		})
	}
}

func TestSettingsCheckFleetJSON(t *testing.T) {
	file := writeSettings(t, t.TempDir(), "settings.yml", "fleet:\n  postgres: postgres://db/bottlecap\n  host: build-box-1\n"+
		"  budget:\n    claude: 20M/month\n    codex: 5M\n  lease: 50k\n")
	r := runCLI(t, map[string]string{"BOTTLECAP_FLEET_DSN": "host=db2 dbname=bottlecap"}, "settings", "check", file, "--json")
	wantCode(t, r, 0)
	var got struct {
		Fleet map[string]any `json:"fleet"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"host": "build-box-1", "host_from": "settings", "dsn_from": "env", "dsn_overrides_settings": true,
		"budget":   map[string]any{"claude": "20000000/month", "codex": float64(5_000_000)},
		"timezone": "UTC", "fail_open": false, "lease": float64(50_000)}
	if !reflect.DeepEqual(got.Fleet, want) {
		t.Errorf("fleet = %#v\nwant    %#v", got.Fleet, want)
	}
	r = runCLI(t, nil, "settings", "check", writeSettings(t, t.TempDir(), "alone.yml", "precedence: strict\n"), "--json")
	wantCode(t, r, 0)
	if strings.Contains(r.stdout, `"fleet"`) {
		t.Errorf("a host alone has a fleet in --json:\n%s", r.stdout)
	}
}
