package deploy_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/api/types/container"
	dclient "github.com/moby/moby/client"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/client"
	"github.com/bot-bottle/bottlecap/enforcement"
	"github.com/bot-bottle/bottlecap/enforcement/dockerlab"
	"github.com/bot-bottle/bottlecap/enforcement/dockertest"
	"github.com/bot-bottle/bottlecap/internal/testutil"
)

// TestMain runs the tests away from a user's home and socket
// (testutil.RunIsolated) and removes the shared test image (the agent's
// and the fake upstream's) after them.
func TestMain(m *testing.M) {
	code := testutil.RunIsolated(m)
	if err := dockertest.Cleanup(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

// The fake upstream's usage for every call: two calls cross the budget,
// and after one there is still room for the meter to admit the next (its
// input estimate and a 4,096-token output slice, README "How a meter
// spends"). The input is about what the meter estimates for the agent's
// "hi", so its estimator learns nothing odd.
const (
	upstreamInput, upstreamOutput = 10, 5990
	perCall                       = upstreamInput + upstreamOutput
	budgetLimit                   = 11000
	budgetLabel                   = "claude=11k"
)

// TestComposeBottleMeteredAndCutOff brings deploy/compose/compose.yaml up
// on the real engine, with the sidecar image built from
// deploy/sidecar/Dockerfile and a daemon of its own: the agent's SDK call
// goes through the meter to a fake upstream on the egress network and is
// counted under the bottle; the call that crosses the label budget gets
// the bottle cut off (the meter leaves egress), and the next call is
// refused by the meter with the provider's 429, never reaching upstream.
func TestComposeBottleMeteredAndCutOff(t *testing.T) {
	cli := dockertest.Engine(t)
	bin, meterImage := buildSidecar(t, cli)
	home := tempDir(t)
	d := startDaemon(t, bin, home)
	slug := "compose-" + dockerlab.RandHex()
	vars := testVars(slug, home, strconv.Itoa(os.Getgid()))
	vars["METER_IMAGE"], vars["AGENT_IMAGE"] = meterImage, dockertest.Image(t, cli)
	vars["BUDGET"] = budgetLabel
	b := up(t, cli, loadCompose(t, vars))

	testutil.Eventually(t, "bottle "+slug+" discovered with its label budget", func() bool {
		got, err := d.Bottle(context.Background(), slug)
		return err == nil && got.LabelBudget["claude"].String() == strconv.Itoa(budgetLimit) && len(got.Containers) == 2
	})
	if got := b.turn(t); got != "200 upstream ok" {
		t.Fatalf("the agent's first call: got %q, want the upstream's answer", got)
	}
	waitUsed(t, d, slug, perCall)
	if got := b.turn(t); got != "200 upstream ok" {
		t.Fatalf("the call that crosses the budget: got %q, want the upstream's answer (it was allowed when asked)", got)
	}
	act := waitAction(t, d, slug)
	if act.Kind != string(budget.ActCutoff) || act.Operator {
		t.Errorf("got action %s (operator %v), want a budget cutoff", act.Kind, act.Operator)
	}
	if got, want := b.networks(t, cli, "meter"), []string{b.project + "_internal"}; !slices.Equal(got, want) {
		t.Errorf("after the cutoff the meter is on %v, want only %v", got, want)
	}
	testutil.Until(t, 30*time.Second, "the meter refuses the cut-off bottle's call", func() string {
		got := b.turn(t)
		if strings.HasPrefix(got, "429 ") && strings.Contains(got, "rate_limit_error") && strings.Contains(got, "bottlecap: bottle "+slug) {
			return ""
		}
		return "got " + got
	})
	if got := b.upstreamCalls(t, cli); got != "2" {
		t.Errorf("the upstream answered %s calls, want 2 (the refused one never left the bottle)", got)
	}
	waitUsed(t, d, slug, 2*perCall) // each call counted once, the refusal not at all
}

// bottle is the compose project as the test brought it up.
type bottle struct {
	project    string
	containers map[string]string // service → container id
	upstream   string            // the fake upstream's container
	cli        *dclient.Client
}

// up creates the compose file's networks and services as docker compose
// names and labels them, plus a fake Anthropic upstream on the egress
// network. The test's only changes to the services: the agent (the test
// image) sleeps, the meter forwards Anthropic calls to the fake upstream,
// and everything carries the test's daemon id (dockertest), which the
// operator's compose file leaves out. Everything is removed when the test
// ends.
func up(t *testing.T, cli *dclient.Client, f composeFile) *bottle {
	t.Helper()
	b := &bottle{project: f.Name, containers: map[string]string{}, cli: cli}
	for name, n := range f.Networks {
		dockertest.CreateNetwork(t, cli, b.project+"_"+name, n.Internal,
			map[string]string{enforcement.LabelProject: b.project, "com.docker.compose.network": name})
	}
	upstream := container.Config{Image: f.Services["agent"].Image, Cmd: []string{"anthropic-upstream", ":8080",
		strconv.Itoa(upstreamInput), strconv.Itoa(upstreamOutput)}}
	b.upstream = dockertest.RunContainer(t, cli, upstream, container.HostConfig{}, b.project+"-upstream", b.project+"_egress", "upstream")
	for _, name := range f.startOrder(t) {
		s := f.Services[name]
		var cmd []string
		switch name {
		case "agent":
			cmd = []string{"sleep"}
		case "meter":
			cmd = []string{"--upstream-anthropic", "http://upstream:8080"}
		}
		b.containers[name] = b.run(t, name, s, cmd)
	}
	return b
}

// run starts one service's container as docker compose would: named
// container_name or <project>-<service>-1, labelled with the project and
// the service, on its networks under the service's name.
func (b *bottle) run(t *testing.T, name string, s composeService, cmd []string) string {
	t.Helper()
	labels := withProject(s.Labels, b.project)
	labels["com.docker.compose.service"] = name
	var env []string
	for k, v := range s.Environment {
		env = append(env, k+"="+v)
	}
	cfg := container.Config{Image: s.Image, Cmd: cmd, Env: env, Labels: labels}
	host := container.HostConfig{Binds: s.Volumes, GroupAdd: s.GroupAdd, ReadonlyRootfs: s.ReadOnly,
		CapDrop: s.CapDrop, SecurityOpt: s.SecurityOpt}
	nets := s.networkNames()
	var more []dockertest.ConnectTo
	for _, n := range nets[1:] {
		more = append(more, dockertest.ConnectTo{Network: b.project + "_" + n, Alias: name})
	}
	cname := s.Name
	if cname == "" {
		cname = b.project + "-" + name + "-1"
	}
	return dockertest.RunContainer(t, b.cli, cfg, host, cname, b.project+"_"+nets[0], name, more...)
}

// turn is one agent call from inside the agent container: its status and
// the reply's text or the error the SDK shows.
func (b *bottle) turn(t *testing.T) string {
	t.Helper()
	out, code := dockertest.Exec(t, b.cli, b.containers["agent"], "/prog", "messages")
	if code != 0 {
		t.Fatalf("the agent's call failed (exit %d): %s\n%s", code, out, b.meterLog(t))
	}
	return out
}

// upstreamCalls is how many calls the fake upstream answered.
func (b *bottle) upstreamCalls(t *testing.T, cli *dclient.Client) string {
	t.Helper()
	out, code := dockertest.Exec(t, cli, b.upstream, "/prog", "get", "http://127.0.0.1:8080/count")
	if code != 0 {
		t.Fatalf("count the upstream's calls: exit %d: %s", code, out)
	}
	return out
}

// networks lists the networks a service's container is attached to.
func (b *bottle) networks(t *testing.T, cli *dclient.Client, service string) []string {
	t.Helper()
	var out []string
	for name := range dockertest.Inspect(t, cli, b.containers[service]).NetworkSettings.Networks {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// meterLog is the meter container's log, for a failure's message.
func (b *bottle) meterLog(t *testing.T) string {
	t.Helper()
	rc, err := b.cli.ContainerLogs(context.Background(), b.containers["meter"], dclient.ContainerLogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		return "meter log: " + err.Error()
	}
	defer rc.Close()
	var buf bytes.Buffer
	io.Copy(&buf, io.LimitReader(rc, 64<<10))
	return "meter log:\n" + buf.String()
}

func waitUsed(t *testing.T, c *client.Client, slug string, want int64) {
	t.Helper()
	testutil.Until(t, 30*time.Second, fmt.Sprintf("%d claude tokens counted for %s", want, slug), func() string {
		v, err := c.Verdict(context.Background(), client.VerdictQuery{Bottle: slug, Provider: "claude"})
		if err != nil {
			return err.Error()
		}
		if v.Used != want {
			return fmt.Sprintf("used %d", v.Used)
		}
		return ""
	})
}

// waitAction waits for the bottle's action to be done.
func waitAction(t *testing.T, c *client.Client, slug string) api.Action {
	t.Helper()
	var found api.Action
	testutil.Eventually(t, "an action done on "+slug, func() bool {
		acts, err := c.Actions(context.Background(), "done")
		i := slices.IndexFunc(acts, func(a api.Action) bool { return a.Bottle == slug })
		if err == nil && i >= 0 {
			found = acts[i]
		}
		return err == nil && i >= 0
	})
	return found
}

// buildSidecar lays out the sidecar's build context with `make
// sidecar-context` (the static binary and the Dockerfile, as `make
// sidecar-image` does) and builds deploy/sidecar/Dockerfile in it through
// the engine's API. It returns the binary, which also runs the test's
// daemon, and the image, removed when the test ends.
func buildSidecar(t *testing.T, cli *dclient.Client) (bin, image string) {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("make", "-C", root, "--no-print-directory", "sidecar-context", "SIDECAR_CONTEXT="+dir).CombinedOutput()
	if err != nil {
		t.Fatalf("make sidecar-context: %v\n%s", err, out)
	}
	image = "bottlecap-meter-test-" + dockerlab.RandHex() + ":latest"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := cli.ImageBuild(ctx, tarDir(t, dir), dclient.ImageBuildOptions{Tags: []string{image}, Remove: true,
		ForceRemove: true, Version: build.BuilderV1})
	if err != nil {
		t.Fatalf("build the sidecar image: %v", err)
	}
	t.Cleanup(func() {
		cli.ImageRemove(context.Background(), image, dclient.ImageRemoveOptions{Force: true, PruneChildren: true})
	})
	defer res.Body.Close()
	if err := buildOutcome(res.Body); err != nil {
		t.Fatalf("build the sidecar image: %v", err)
	}
	return filepath.Join(dir, "bottlecap"), image
}

// buildOutcome reads the build's progress to its end: the first error.
func buildOutcome(r io.Reader) error {
	dec := json.NewDecoder(r)
	for {
		var m struct {
			Stream string `json:"stream"`
			Error  string `json:"error"`
		}
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		if m.Error != "" {
			return errors.New(m.Error)
		}
	}
}

// tarDir is a build context: the directory's regular files.
func tarDir(t *testing.T, dir string) io.Reader {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := e.Info()
		if err := tw.WriteHeader(&tar.Header{Name: e.Name(), Mode: int64(fi.Mode().Perm()), Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write(b)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf
}

// tempDir is a short temporary directory (a unix socket's path is limited
// to 108 bytes), removed when the test ends.
func tempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "bcd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// startDaemon runs `bottlecap serve` on home, enforcing through the
// engine with the test's daemon id (it takes the containers the test made
// and nothing else), and returns a client once it answers. It is stopped
// when the test ends, and its log is shown if the test failed.
func startDaemon(t *testing.T, bin, home string) *client.Client {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "serve", "--docker", "--log-level", "debug", "--daemon-id", dockertest.DaemonID(t))
	cmd.Env = append(os.Environ(), "BOT_BOTTLE_HOME="+home, "BOTTLECAP_SOCKET=")
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	c := client.New(filepath.Join(home, "run", "bottlecap.sock"), client.WithRetry(20*time.Second))
	t.Cleanup(func() {
		c.Close()
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", stderr.String())
		}
	})
	if _, err := c.Status(context.Background()); err != nil {
		t.Fatalf("daemon did not come up: %v", err)
	}
	return c
}
