package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/client"
	"github.com/bot-bottle/bottlecap/internal/testutil"
)

// TestReloadSaysWhetherALimitInForceChanged is issue 14's complaint on the
// real binary: an operator edits settings.yml for a bottle whose limit was
// set at runtime. The reload's log line says nothing in force changed and
// why; after budget rm, the settings' limit is in force, and the next edit
// is named as a change.
func TestReloadSaysWhetherALimitInForceChanged(t *testing.T) {
	home := newHome(t)
	settings := filepath.Join(home, "settings.yml")
	write := func(limit string) {
		t.Helper()
		if err := os.WriteFile(settings, []byte("bottles:\n  dev:\n    budget:\n      claude: "+limit+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("5M")
	p := startServe(t, home)
	c := client.New(p.sock)
	defer c.Close()
	ctx := context.Background()
	if _, err := c.PutBottle(ctx, "b1", api.BottleRequest{Name: "dev", Agent: "a"}); err != nil {
		t.Fatal(err)
	}
	b1 := budget.Scope{Kind: budget.ScopeBottle, ID: "b1"}
	if _, err := c.PutBudget(ctx, b1, budget.Limits{"claude": budget.Lifetime(1_000_000)}); err != nil {
		t.Fatal(err)
	}

	write("3M")
	p.cmd.Process.Signal(syscall.SIGHUP)
	testutil.Eventually(t, "the reload says the runtime limit overrides the edit", func() bool {
		return strings.Contains(p.stderr.String(), "settings reloaded: no limit in force changed (bottle/b1 claude is set at runtime, which overrides settings)")
	})
	if v, _ := c.Verdict(ctx, client.VerdictQuery{Bottle: "b1", Provider: "claude"}); v.Limit != 1_000_000 {
		t.Errorf("limit %d after the reload, want the runtime 1000000", v.Limit)
	}

	if _, err := c.RemoveBudget(ctx, b1, "claude"); err != nil {
		t.Fatal(err)
	}
	if v, _ := c.Verdict(ctx, client.VerdictQuery{Bottle: "b1", Provider: "claude"}); v.Limit != 3_000_000 {
		t.Errorf("limit %d after budget rm, want the settings' 3000000", v.Limit)
	}
	write("2M")
	p.cmd.Process.Signal(syscall.SIGHUP)
	testutil.Eventually(t, "the reload names the change", func() bool {
		return strings.Contains(p.stderr.String(), "settings reloaded: 1 limit in force changed: bottle/b1 claude 3000000 → 2000000 (settings)")
	})
}
