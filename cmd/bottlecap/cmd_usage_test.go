package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// usageFixtures are the recorded provider payloads of meter/usage with the
// counts read off them by hand.
func usageFixtures(t *testing.T) []usageJSON {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(usageTestdata, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var raw []struct {
		File string `json:"file"`
		usageJSON
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	out := make([]usageJSON, len(raw))
	for i, r := range raw {
		out[i] = r.usageJSON
		out[i].ID = r.File // carried in ID for the test's use only
	}
	return out
}

const usageTestdata = "../../meter/usage/testdata"

func TestUsageParseFixtures(t *testing.T) {
	for _, want := range usageFixtures(t) {
		file := want.ID
		t.Run(file, func(t *testing.T) {
			for _, format := range []string{"auto", string(want.Format)} {
				r := runCLI(t, nil, "usage", "parse", "--format", format, filepath.Join(usageTestdata, file))
				wantCode(t, r, 0)
				var got usageJSON
				if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
					t.Fatalf("stdout is not JSON (%v):\n%s", err, r.stdout)
				}
				if got.Format != want.Format || got.Input != want.Input || got.CacheRead != want.CacheRead ||
					got.CacheWrite != want.CacheWrite || got.Output != want.Output ||
					got.Reasoning != want.Reasoning || got.Total != want.Total {
					t.Errorf("--format %s: got %+v, want %+v", format, got, want)
				}
			}
		})
	}
}

func TestUsageParseStdin(t *testing.T) {
	body, err := os.ReadFile(filepath.Join(usageTestdata, "anthropic-messages-stream-tooluse.sse"))
	if err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, map[string]string{"_stdin": string(body)}, "usage", "parse", "-")
	wantCode(t, r, 0)
	for _, s := range []string{`"format": "anthropic"`, `"id": "msg_01AusY9WEbCaj3N7Tv5J4YjH"`, `"complete": true`, `"model": "claude-haiku-4-5-20251001"`} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("stdout lacks %s:\n%s", s, r.stdout)
		}
	}
}

func TestUsageParseErrors(t *testing.T) {
	tests := []struct {
		name  string
		stdin string
		args  []string
		code  int
		want  string
	}{
		{"no usage", `{"hello": "world"}`, []string{"-"}, 1, "no usage found"},
		{"not json", "plain text", []string{"-"}, 1, "stdin"},
		{"missing file", "", []string{"/nonexistent/body.json"}, 1, "no such file"},
		{"bad format", "", []string{"--format", "bogus", "-"}, 2, "unknown usage format"},
		{"no file", "", nil, 2, "missing argument FILE"},
		{"no subcommand", "", nil, 2, "missing command: want parse"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"usage", "parse"}, tt.args...)
			if tt.name == "no subcommand" {
				args = []string{"usage"}
			}
			r := runCLI(t, map[string]string{"_stdin": tt.stdin}, args...)
			wantCode(t, r, tt.code)
			if !strings.Contains(r.stderr, tt.want) {
				t.Errorf("stderr lacks %q:\n%s", tt.want, r.stderr)
			}
		})
	}
}
