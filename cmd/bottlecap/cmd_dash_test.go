package main

import (
	"context"
	"strings"
	"testing"
)

func TestDashWithoutLedgerSaysStartTheDaemon(t *testing.T) {
	home := t.TempDir()
	out := &syncBuffer{}
	env := map[string]string{"BOT_BOTTLE_HOME": home}
	m := &Main{Stdin: strings.NewReader(""), Stdout: out, Stderr: out, Getenv: func(k string) string { return env[k] }}
	if got := m.Run(context.Background(), []string{"dash"}); got != 1 {
		t.Fatalf("exit %d, want 1\n%s", got, out.String())
	}
	for _, want := range []string{"no ledger at " + home, "start the daemon first (bottlecap serve)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output %q lacks %q", out.String(), want)
		}
	}
}

func TestDashRejectsArguments(t *testing.T) {
	out := &syncBuffer{}
	m := &Main{Stdin: strings.NewReader(""), Stdout: out, Stderr: out, Getenv: homeEnv(t)}
	if got := m.Run(context.Background(), []string{"dash", "extra"}); got != 2 {
		t.Errorf("dash extra: exit %d, want 2\n%s", got, out.String())
	}
}
