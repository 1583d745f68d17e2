package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSettingsCheck(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yml")
	if err := os.WriteFile(bad, []byte("precedence: nearest\nbudget:\n  claude: 5Q\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	unknown := filepath.Join(dir, "unknown.yml")
	if err := os.WriteFile(unknown, []byte("budgets:\n  claude: 5M\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, file string
		wantCode   int
		want       string
	}{
		{"the shipped example", "../../settings.example.yml", 0, "ok (precedence nearest"},
		{"a bad token amount", bad, 1, "bad.yml:3:11: budget.claude"},
		{"an unknown key", unknown, 1, "unknown.yml:1:1: budgets"},
		{"a missing file means the defaults", filepath.Join(dir, "none.yml"), 0, "ok (precedence nearest, shutdown cutoff, warn at 80%"},
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
