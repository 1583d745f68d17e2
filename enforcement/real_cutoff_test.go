package enforcement_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"

	"github.com/moby/moby/client"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/enforcement"
)

// fetch asks the sidecar, from inside the agent, to fetch the upstream.
func (b *realBottle) fetch(t *testing.T, cli *client.Client) (string, int) {
	t.Helper()
	return execIn(t, cli, b.agent, "/prog", "get", "http://egress:8080/fetch")
}

// sidecarSays reads one of the sidecar's own endpoints (hups, routes).
func (b *realBottle) sidecarSays(t *testing.T, cli *client.Client, path string) string {
	t.Helper()
	out, code := execIn(t, cli, b.agent, "/prog", "get", "http://egress:8080/"+path)
	if code != 0 {
		t.Fatalf("sidecar /%s: exit %d: %s", path, code, out)
	}
	return out
}

func (b *realBottle) egressAliases(t *testing.T, cli *client.Client) []string {
	t.Helper()
	ep := inspectReal(t, cli, b.sidecar).NetworkSettings.Networks[b.egress]
	if ep == nil {
		return nil
	}
	a := slices.Clone(ep.Aliases)
	slices.Sort(a)
	return a
}

func TestRealCutoffAndRestore(t *testing.T) {
	t.Parallel()
	cli := realEngine(t)
	b := newRealBottle(t, cli, true)
	eventually(t, "sidecar reaches upstream before cutoff", func() string {
		if out, code := b.fetch(t, cli); code != 0 || out != "upstream ok" {
			return fmt.Sprintf("exit %d: %s", code, out)
		}
		return ""
	})
	aliases, ino := b.egressAliases(t, cli), inode(t, b.routes)
	d := enforcement.NewDocker(cli, t.TempDir(), &enforcement.MemMemo{})
	act := func(k budget.ActionKind) {
		t.Helper()
		if err := d.Do(context.Background(), enforcement.Action{Kind: k, Bottle: b.slug}); err != nil {
			t.Fatalf("%s: %v", k, err)
		}
	}

	act(budget.ActCutoff)
	for i := 1; i <= 2; i++ { // the second cutoff must change nothing
		if i == 2 {
			unchanged(t, cli, "second cutoff", func() { act(budget.ActCutoff) })
		}
		if out, code := b.fetch(t, cli); code == 0 {
			t.Errorf("cutoff #%d: sidecar still reaches upstream: %s", i, out)
		}
		empty := "log: /dev/stdout\nroutes: []\n"
		if got, _ := os.ReadFile(b.routes); string(got) != empty {
			t.Errorf("cutoff #%d: routes file = %q, want %q", i, got, empty)
		}
		if got := inode(t, b.routes); got != ino {
			t.Errorf("cutoff #%d: routes inode = %d, want %d", i, got, ino)
		}
		if got := b.sidecarSays(t, cli, "hups"); got != "1" {
			t.Errorf("cutoff #%d: sidecar got %s SIGHUPs, want 1", i, got)
		}
		if got := b.sidecarSays(t, cli, "routes"); got+"\n" != empty {
			t.Errorf("cutoff #%d: sidecar read %q on SIGHUP, want the empty table", i, got)
		}
		if got := b.egressAliases(t, cli); got != nil {
			t.Errorf("cutoff #%d: sidecar still on egress with %q", i, got)
		}
	}

	act(budget.ActRestore)
	for i := 1; i <= 2; i++ { // the second restore must change nothing
		if i == 2 {
			unchanged(t, cli, "second restore", func() { act(budget.ActRestore) })
		}
		if out, code := b.fetch(t, cli); code != 0 || out != "upstream ok" {
			t.Errorf("restore #%d: fetch = exit %d %q, want upstream ok", i, code, out)
		}
		if got, _ := os.ReadFile(b.routes); string(got) != sidecarRoutes {
			t.Errorf("restore #%d: routes file = %q, want the original", i, got)
		}
		if got := inode(t, b.routes); got != ino {
			t.Errorf("restore #%d: routes inode = %d, want %d", i, got, ino)
		}
		if got := b.sidecarSays(t, cli, "hups"); got != "2" {
			t.Errorf("restore #%d: sidecar got %s SIGHUPs, want 2", i, got)
		}
		if got := b.egressAliases(t, cli); !slices.Equal(got, aliases) {
			t.Errorf("restore #%d: egress aliases = %q, want %q", i, got, aliases)
		}
		// The upstream finds the sidecar again by its egress alias.
		if out, code := execIn(t, cli, b.up, "/prog", "get", "http://proxy:8080/hups"); code != 0 {
			t.Errorf("restore #%d: upstream cannot reach the sidecar as proxy: %s", i, out)
		}
	}
}
