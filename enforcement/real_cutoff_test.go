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
	"github.com/bot-bottle/bottlecap/internal/testutil"
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
	testutil.Until(t, testutil.Within, "sidecar reaches upstream before cutoff", func() string {
		if out, code := b.fetch(t, cli); code != 0 || out != "upstream ok" {
			return fmt.Sprintf("exit %d: %s", code, out)
		}
		return ""
	})
	aliases, ino := b.egressAliases(t, cli), inode(t, b.routes)
	d := testDocker(t, cli, t.TempDir())
	act := func(k budget.ActionKind) {
		t.Helper()
		if err := d.Do(context.Background(), enforcement.Action{Kind: k, Bottle: b.slug}); err != nil {
			t.Fatalf("%s: %v", k, err)
		}
	}

	act(budget.ActCutoff)
	b.checkCutOff(t, cli, "cutoff", ino)
	unchanged(t, cli, b.slug, "second cutoff", func() { act(budget.ActCutoff) })
	b.checkCutOff(t, cli, "second cutoff", ino)

	act(budget.ActRestore)
	b.checkRestored(t, cli, "restore", ino, aliases)
	unchanged(t, cli, b.slug, "second restore", func() { act(budget.ActRestore) })
	b.checkRestored(t, cli, "second restore", ino, aliases)
}

// checkCutOff shows with real traffic that the bottle is cut off: the
// sidecar cannot reach the upstream, its routes file is the empty table in
// the same inode, and it reloaded it on exactly one SIGHUP.
func (b *realBottle) checkCutOff(t *testing.T, cli *client.Client, when string, ino uint64) {
	t.Helper()
	if out, code := b.fetch(t, cli); code == 0 {
		t.Errorf("%s: sidecar still reaches upstream: %s", when, out)
	}
	empty := "log: /dev/stdout\nroutes: []\n"
	if got, _ := os.ReadFile(b.routes); string(got) != empty {
		t.Errorf("%s: routes file = %q, want %q", when, got, empty)
	}
	if got := inode(t, b.routes); got != ino {
		t.Errorf("%s: routes inode = %d, want %d", when, got, ino)
	}
	if got := b.sidecarSays(t, cli, "hups"); got != "1" {
		t.Errorf("%s: sidecar got %s SIGHUPs, want 1", when, got)
	}
	if got := b.sidecarSays(t, cli, "routes"); got+"\n" != empty {
		t.Errorf("%s: sidecar read %q on SIGHUP, want the empty table", when, got)
	}
	if got := b.egressAliases(t, cli); got != nil {
		t.Errorf("%s: sidecar still on egress with %q", when, got)
	}
}

// checkRestored shows that the sidecar reaches the upstream again, is
// reachable under its old alias, and reloaded the original routes.
func (b *realBottle) checkRestored(t *testing.T, cli *client.Client, when string, ino uint64, aliases []string) {
	t.Helper()
	// The engine's embedded DNS learns a reconnected endpoint's names
	// asynchronously; on a loaded machine the first lookup can miss.
	testutil.Until(t, testutil.Within, when+": sidecar reaches upstream again", func() string {
		if out, code := b.fetch(t, cli); code != 0 || out != "upstream ok" {
			return fmt.Sprintf("fetch = exit %d %q, want upstream ok", code, out)
		}
		return ""
	})
	if got, _ := os.ReadFile(b.routes); string(got) != sidecarRoutes {
		t.Errorf("%s: routes file = %q, want the original", when, got)
	}
	if got := inode(t, b.routes); got != ino {
		t.Errorf("%s: routes inode = %d, want %d", when, got, ino)
	}
	if got := b.sidecarSays(t, cli, "hups"); got != "2" {
		t.Errorf("%s: sidecar got %s SIGHUPs, want 2", when, got)
	}
	if got := b.sidecarSays(t, cli, "routes"); got+"\n" != sidecarRoutes {
		t.Errorf("%s: sidecar read %q on SIGHUP, want the original routes", when, got)
	}
	if got := b.egressAliases(t, cli); !slices.Equal(got, aliases) {
		t.Errorf("%s: egress aliases = %q, want %q", when, got, aliases)
	}
	testutil.Until(t, testutil.Within, when+": upstream reaches the sidecar by its alias proxy", func() string {
		if out, code := execIn(t, cli, b.up, "/prog", "get", "http://proxy:8080/hups"); code != 0 {
			return out
		}
		return ""
	})
}

// TestRealUsersEnforcerLeavesTestBottleAlone: the enforcer of a user's
// daemon (no daemon id) asked to cut off, pause, freeze and kill a bottle
// a test made changes nothing of it on the engine: every container and
// network of it carries the test's daemon id.
func TestRealUsersEnforcerLeavesTestBottleAlone(t *testing.T) {
	t.Parallel()
	cli := realEngine(t)
	b := newRealBottle(t, cli, false)
	t.Cleanup(func() { // only there when the test fails: a freeze went through
		cli.ImageRemove(context.Background(), enforcement.CommittedImage(b.slug), client.ImageRemoveOptions{Force: true, PruneChildren: true})
	})
	users := enforcement.NewDocker(cli, t.TempDir(), &enforcement.MemMemo{})
	unchanged(t, cli, b.slug, "a user's daemon acting on the test's bottle", func() {
		for _, k := range []budget.ActionKind{budget.ActCutoff, budget.ActPause, budget.ActFreeze, budget.ActKill} {
			if err := users.Do(context.Background(), enforcement.Action{Kind: k, Bottle: b.slug, Containers: []string{b.agent}}); err != nil {
				t.Errorf("%s: %v", k, err)
			}
		}
	})
	for _, id := range []string{b.agent, b.sidecar} {
		if c := inspectReal(t, cli, id); !c.State.Running || c.State.Paused || len(c.NetworkSettings.Networks) == 0 {
			t.Errorf("%s after the user's actions: running %v, paused %v, networks %d; want it as it was",
				c.Name, c.State.Running, c.State.Paused, len(c.NetworkSettings.Networks))
		}
	}
	if _, err := cli.ImageInspect(context.Background(), enforcement.CommittedImage(b.slug)); err == nil {
		t.Errorf("the user's freeze committed %s", enforcement.CommittedImage(b.slug))
	}
}
