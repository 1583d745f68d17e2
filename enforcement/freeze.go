package enforcement

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/bot-bottle/bottlecap/budget"
)

// CommittedImage is the reference freeze commits a bottle's agent to; it is
// what bot-bottle's `resume <slug>` boots from.
func CommittedImage(slug string) string { return "bot-bottle-committed-" + slug + ":latest" }

// StateDir is bot-bottle's per-bottle state directory under home.
func StateDir(home, slug string) string { return filepath.Join(home, "state", slug) }

// freeze commits the agent container, records the image for bot-bottle and
// stops every container of the bottle.
func (d *Docker) freeze(ctx context.Context, a Action) error {
	ctrs, err := d.containers(ctx, a)
	if err != nil {
		return err
	}
	agent, ok, err := d.agent(ctx, a.Bottle, ctrs)
	if err != nil {
		return err
	}
	if ok {
		if err := d.commit(ctx, a.Bottle, agent); err != nil {
			return err
		}
	}
	var errs []error
	for _, c := range ctrs {
		errs = append(errs, d.stop(ctx, c.ID))
	}
	return errors.Join(errs...)
}

// agent finds the container to commit: the one named bot-bottle-<slug>
// if it is this daemon's, else the bottle's first container.
func (d *Docker) agent(ctx context.Context, slug string, ctrs []container.Summary) (container.InspectResponse, bool, error) {
	name := ProjectPrefix + slug
	info, ok, err := d.inspect(ctx, name)
	if ok && !OfDaemon(labelsOf(info), d.DaemonID) {
		ok = false
	}
	if err != nil || ok || len(ctrs) == 0 {
		return info, ok, err
	}
	return d.inspect(ctx, ctrs[0].ID)
}

// labelsOf is an inspected container's labels.
func labelsOf(info container.InspectResponse) map[string]string {
	if info.Config == nil {
		return nil
	}
	return info.Config.Labels
}

// commit snapshots the agent and writes the state files. A stopped agent
// whose image and state files are already in place was frozen before:
// committing it again would only make a new image of the same content.
func (d *Docker) commit(ctx context.Context, slug string, agent container.InspectResponse) error {
	ref := CommittedImage(slug)
	running := agent.State != nil && agent.State.Running
	if !running && d.frozenBefore(ctx, slug, ref) {
		return nil
	}
	_, err := call(ctx, d.CallTimeout, "commit "+short(agent.ID), func(ctx context.Context) (client.ContainerCommitResult, error) {
		return d.engine.ContainerCommit(ctx, agent.ID, client.ContainerCommitOptions{Reference: ref, Comment: "frozen by bottlecap"})
	})
	if err != nil {
		return err
	}
	return writeFreezeState(StateDir(d.home, slug), ref)
}

// frozenBefore reports whether the committed image and both state files
// exist. Any doubt (including an engine error) answers false, so the
// caller commits again, which is safe.
func (d *Docker) frozenBefore(ctx context.Context, slug, ref string) bool {
	dir := StateDir(d.home, slug)
	b, err := os.ReadFile(filepath.Join(dir, "committed-image"))
	if err != nil || strings.TrimSpace(string(b)) != ref {
		return false
	}
	if _, err := os.Stat(filepath.Join(dir, ".preserve")); err != nil {
		return false
	}
	_, err = call(ctx, d.CallTimeout, "inspect image "+ref, func(ctx context.Context) (client.ImageInspectResult, error) {
		return d.engine.ImageInspect(ctx, ref)
	})
	return err == nil
}

// writeFreezeState writes state/<slug>/committed-image and .preserve.
func writeFreezeState(dir, ref string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("freeze state: %w", err)
	}
	img := filepath.Join(dir, "committed-image")
	if b, err := os.ReadFile(img); err != nil || !bytes.Equal(b, []byte(ref+"\n")) {
		tmp := img + ".tmp"
		if err := os.WriteFile(tmp, []byte(ref+"\n"), 0o644); err != nil {
			return fmt.Errorf("freeze state: %w", err)
		}
		if err := os.Rename(tmp, img); err != nil {
			return fmt.Errorf("freeze state: %w", err)
		}
	}
	f, err := os.OpenFile(filepath.Join(dir, ".preserve"), os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("freeze state: %w", err)
	}
	return f.Close()
}

// kill stops and removes every container of the bottle, then the project's
// networks. The cutoff memo goes too: there is nothing left to restore.
func (d *Docker) kill(ctx context.Context, a Action) error {
	ctrs, err := d.containers(ctx, a)
	if err != nil {
		return err
	}
	for _, c := range ctrs {
		if err := d.remove(ctx, c.ID); err != nil {
			return err
		}
	}
	nets, err := d.networks(ctx, a.Bottle)
	if err != nil {
		return err
	}
	for _, n := range nets {
		_, err := call(ctx, d.CallTimeout, "remove network "+n.Name, func(ctx context.Context) (client.NetworkRemoveResult, error) {
			return d.engine.NetworkRemove(ctx, n.ID, client.NetworkRemoveOptions{})
		})
		if err := ignore(err, budget.ErrNotFound); err != nil {
			return err
		}
	}
	if err := d.memo.DeleteMemo(ctx, a.Bottle, memoKey); err != nil {
		return fmt.Errorf("clear cutoff memo: %w", err)
	}
	return nil
}

// remove stops a container (giving it its grace period) and removes it
// with its anonymous volumes.
func (d *Docker) remove(ctx context.Context, id string) error {
	if err := d.stop(ctx, id); err != nil {
		return err
	}
	_, err := call(ctx, d.CallTimeout, "remove "+short(id), func(ctx context.Context) (client.ContainerRemoveResult, error) {
		return d.engine.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	})
	// A conflict on a forced removal means one is already in progress.
	return ignore(err, budget.ErrNotFound, budget.ErrConflict)
}

// networks lists the project's networks: labelled with the Compose project,
// or named with its prefix (`bot-bottle-<slug>_…`, Compose's naming), and
// of this daemon (see LabelDaemon).
func (d *Docker) networks(ctx context.Context, slug string) ([]network.Summary, error) {
	project := ProjectPrefix + slug
	res, err := call(ctx, d.CallTimeout, "list networks", func(ctx context.Context) (client.NetworkListResult, error) {
		return d.engine.NetworkList(ctx, client.NetworkListOptions{})
	})
	if err != nil {
		return nil, err
	}
	var out []network.Summary
	for _, n := range res.Items {
		if OfDaemon(n.Labels, d.DaemonID) && (n.Labels[LabelProject] == project || strings.HasPrefix(n.Name, project+"_")) {
			out = append(out, n)
		}
	}
	slices.SortFunc(out, func(x, y network.Summary) int { return strings.Compare(x.Name, y.Name) })
	return out, nil
}
