package enforcement_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"

	"github.com/bot-bottle/bottlecap/enforcement"
)

// The tests against the real engine share one client and one image, built
// FROM scratch from internal/testprog on first use and removed by TestMain.
var shared struct {
	once   sync.Once
	cli    *client.Client
	err    error // why there is no engine
	image  string
	imgErr error
	imgMu  sync.Mutex
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.image != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if _, err := shared.cli.ImageRemove(ctx, shared.image, client.ImageRemoveOptions{Force: true, PruneChildren: true}); err != nil {
			fmt.Fprintln(os.Stderr, "remove test image:", err)
		}
		cancel()
	}
	os.Exit(code)
}

// realEngine returns a client for the local engine, or skips the test when
// none answers, unless BOTTLECAP_REQUIRE_DOCKER=1 (CI), where that fails.
func realEngine(t *testing.T) *client.Client {
	t.Helper()
	shared.once.Do(func() {
		shared.cli, shared.err = enforcement.Connect()
		if shared.err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if ok, _, err := enforcement.EngineStatus(ctx, shared.cli); !ok {
			shared.err = err
		}
	})
	if shared.err != nil {
		if os.Getenv("BOTTLECAP_REQUIRE_DOCKER") == "1" {
			t.Fatalf("docker engine required (BOTTLECAP_REQUIRE_DOCKER=1): %v", shared.err)
		}
		t.Skipf("no docker engine: %v", shared.err)
	}
	return shared.cli
}

// testImage returns the test image's reference, building it on first use.
func testImage(t *testing.T, cli *client.Client) string {
	t.Helper()
	shared.imgMu.Lock()
	defer shared.imgMu.Unlock()
	if shared.image == "" && shared.imgErr == nil {
		shared.image, shared.imgErr = buildImage(cli)
	}
	if shared.imgErr != nil {
		t.Fatalf("build test image: %v", shared.imgErr)
	}
	return shared.image
}

// buildImage compiles testprog statically and imports it as a one-file
// image: no registry, no base image.
func buildImage(cli *client.Client) (string, error) {
	dir, err := os.MkdirTemp("", "bottlecap-testprog")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "prog")
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	cmd := exec.Command(gobin, "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./internal/testprog")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	tarball, err := tarOf(bin, "prog")
	if err != nil {
		return "", err
	}
	ref := "bottlecap-test-" + randHex() + ":latest"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rc, err := cli.ImageImport(ctx, client.ImageImportSource{Source: tarball, SourceName: "-"}, ref,
		client.ImageImportOptions{Changes: []string{`ENTRYPOINT ["/prog"]`}})
	if err != nil {
		return "", err
	}
	defer rc.Close()
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return "", err
	}
	return ref, nil
}

func tarOf(path, name string) (io.Reader, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(b); err != nil {
		return nil, err
	}
	return &buf, tw.Close()
}

func randHex() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// execIn runs a command in a container and returns its output and exit code.
func execIn(t *testing.T, cli *client.Client, ctr string, cmd ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ex, err := cli.ExecCreate(ctx, ctr, client.ExecCreateOptions{Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		t.Fatalf("exec %v in %s: %v", cmd, ctr, err)
	}
	att, err := cli.ExecAttach(ctx, ex.ID, client.ExecAttachOptions{})
	if err != nil {
		t.Fatalf("exec attach: %v", err)
	}
	defer att.Close()
	var out bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &out, att.Reader); err != nil {
		t.Fatalf("exec output: %v", err)
	}
	for {
		res, err := cli.ExecInspect(ctx, ex.ID, client.ExecInspectOptions{})
		if err != nil {
			t.Fatalf("exec inspect: %v", err)
		}
		if !res.Running {
			return strings.TrimSpace(out.String()), res.ExitCode
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// eventually retries check until it returns "" or the time is up.
func eventually(t *testing.T, what string, check func() string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		msg := check()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s", what, msg)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// unchanged runs f and fails the test if the engine reports any change to a
// container, network or image meanwhile (exec events aside): the proof that
// a repeated action did nothing.
func unchanged(t *testing.T, cli *client.Client, what string, f func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	filters := client.Filters{}.Add("type", "container", "network", "image").
		Add("event", "kill", "stop", "die", "start", "destroy", "commit", "tag", "connect", "disconnect", "create")
	ev := cli.Events(ctx, client.EventsListOptions{Filters: filters})
	f()
	for { // until the engine has been quiet for a while

		select {
		case m := <-ev.Messages:
			t.Errorf("%s: engine reported %s %s %s", what, m.Type, m.Action, m.Actor.Attributes["name"])
		case err := <-ev.Err:
			t.Fatalf("%s: events: %v", what, err)
		case <-time.After(300 * time.Millisecond):
			return
		}
	}
}
