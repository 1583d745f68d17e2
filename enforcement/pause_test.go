package enforcement_test

import (
	"context"
	"slices"
	"testing"

	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/enforcement"
)

// pauseWorld is bottleWorld with a sidecar of each kind pause must leave
// running: named bot-bottle-sidecars-dev1, labelled as Compose's sidecars
// service, labelled with bot-bottle's sidecar role; and a stopped helper.
func pauseWorld(t *testing.T) *world {
	t.Helper()
	w, _ := bottleWorld(t)
	project := func(extra ...string) map[string]string {
		l := map[string]string{enforcement.LabelProject: "bot-bottle-dev1"}
		for i := 0; i+1 < len(extra); i += 2 {
			l[extra[i]] = extra[i+1]
		}
		return l
	}
	none := map[string]*network.EndpointSettings{}
	w.ctrs[1].labels = project(enforcement.LabelComposeService, "sidecars")
	w.ctrs = append(w.ctrs,
		&fctr{id: "c-named", name: "bot-bottle-sidecars-dev1", labels: project(), created: 4, running: true, nets: none},
		&fctr{id: "c-role", name: "meter", labels: project(enforcement.LabelRole, "sidecar"), created: 5, running: true, nets: none},
		&fctr{id: "c-tool", name: "tool", labels: project(enforcement.LabelComposeService, "tools"), created: 6, running: true, nets: none},
		&fctr{id: "c-done", name: "done", labels: project(), created: 7, nets: none},
	)
	return w
}

// TestPausePausesAllButSidecars: the agent and every other running
// container of the bottle are paused; sidecars, stopped containers and
// other bottles' containers are not; a second pause does nothing.
func TestPausePausesAllButSidecars(t *testing.T) {
	w := pauseWorld(t)
	d := enforcement.NewDocker(w.engine(), t.TempDir(), &enforcement.MemMemo{})
	do(t, d, budget.ActPause)
	want := []string{"pause bot-bottle-dev1", "pause tool"}
	if got := w.calls(); !slices.Equal(got, want) {
		t.Errorf("calls = %q, want %q", got, want)
	}
	do(t, d, budget.ActPause)
	if got := w.calls(); len(got) != len(want) {
		t.Errorf("second pause made calls %q", got[len(want):])
	}
}

// TestRestoreUnpauses: restore unpauses what a pause paused, and a second
// restore does nothing.
func TestRestoreUnpauses(t *testing.T) {
	w := pauseWorld(t)
	d := enforcement.NewDocker(w.engine(), t.TempDir(), &enforcement.MemMemo{})
	do(t, d, budget.ActPause)
	do(t, d, budget.ActRestore)
	do(t, d, budget.ActRestore)
	want := []string{"pause bot-bottle-dev1", "pause tool", "unpause bot-bottle-dev1", "unpause tool"}
	if got := w.calls(); !slices.Equal(got, want) {
		t.Errorf("calls = %q, want %q", got, want)
	}
}

// TestRestoreAfterCutoffOfAPausedBottle: an operator cut off a paused
// bottle; restore reconnects its network first, then unpauses it.
func TestRestoreAfterCutoffOfAPausedBottle(t *testing.T) {
	w := pauseWorld(t)
	d := enforcement.NewDocker(w.engine(), t.TempDir(), &enforcement.MemMemo{})
	do(t, d, budget.ActPause)
	do(t, d, budget.ActCutoff)
	n := len(w.calls())
	do(t, d, budget.ActRestore)
	want := []string{"connect bot-bottle-dev1-egress-1 bot-bottle-dev1_egress [egress proxy]", "kill bot-bottle-dev1-egress-1 HUP",
		"unpause bot-bottle-dev1", "unpause tool"}
	if got := w.calls()[n:]; !slices.Equal(got, want) {
		t.Errorf("restore calls = %q, want %q", got, want)
	}
}

// TestUnpauseRacingAnotherIsDone: a container unpaused by someone else
// between the list and the call answers "not paused" (an error of no
// class); its state shows it runs, so the restore is done, not retried.
func TestUnpauseRacingAnotherIsDone(t *testing.T) {
	w := pauseWorld(t)
	f := w.engine()
	d := enforcement.NewDocker(f, t.TempDir(), &enforcement.MemMemo{})
	do(t, d, budget.ActPause)
	unpause := f.ContainerUnpauseFn
	f.ContainerUnpauseFn = func(ctx context.Context, id string, o client.ContainerUnpauseOptions) (client.ContainerUnpauseResult, error) {
		w.mu.Lock()
		w.ctr(id).paused = false // someone else got there first
		w.mu.Unlock()
		return unpause(ctx, id, o)
	}
	if err := d.Do(context.Background(), enforcement.Action{Kind: budget.ActRestore, Bottle: "dev1"}); err != nil {
		t.Errorf("restore: %v, want done", err)
	}
}
