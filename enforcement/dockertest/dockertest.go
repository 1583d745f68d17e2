// Package dockertest is what tests and benchmarks need to run against the
// real Docker engine: the gate that skips a test when no engine answers
// (and fails it under BOTTLECAP_REQUIRE_DOCKER=1, as CI runs), and a
// one-file test image built FROM scratch from enforcement/internal/testprog,
// with no registry and no base image. It lives outside internal/ so that
// the daemon's end-to-end tests and cmd/bench can use it too.
package dockertest

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
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/bot-bottle/bottlecap/enforcement"
)

// EnvRequire names the variable that turns "no engine" from a skip into a
// failure.
const EnvRequire = "BOTTLECAP_REQUIRE_DOCKER"

// testprogPkg is the static binary the test image runs.
const testprogPkg = "github.com/bot-bottle/bottlecap/enforcement/internal/testprog"

// shared is one client and one image per process, built on first use.
var shared struct {
	once   sync.Once
	cli    *client.Client
	err    error // why there is no engine
	imgMu  sync.Mutex
	image  string
	imgErr error
}

// Connect returns the process's client for the engine named by the
// environment, or why none answers (checked once, with a ping).
func Connect() (*client.Client, error) {
	shared.once.Do(func() {
		// The full client, not enforcement.Conn: tests create what they act on.
		shared.cli, shared.err = client.New(client.FromEnv)
		if shared.err != nil {
			shared.err = fmt.Errorf("docker client: %w", shared.err)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if ok, _, err := enforcement.EngineStatus(ctx, shared.cli); !ok {
			shared.err = err
		}
	})
	return shared.cli, shared.err
}

// Engine returns the engine's client, or skips the test when none answers,
// unless BOTTLECAP_REQUIRE_DOCKER=1, where that fails it.
func Engine(t testing.TB) *client.Client {
	t.Helper()
	cli, err := Connect()
	if err != nil {
		if os.Getenv(EnvRequire) == "1" {
			t.Fatalf("docker engine required (%s=1): %v", EnvRequire, err)
		}
		t.Skipf("no docker engine: %v", err)
	}
	return cli
}

// Image returns the shared test image's reference, building it on first
// use. Call Cleanup from TestMain to remove it.
func Image(t testing.TB, cli *client.Client) string {
	t.Helper()
	shared.imgMu.Lock()
	defer shared.imgMu.Unlock()
	if shared.image == "" && shared.imgErr == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		shared.image, shared.imgErr = BuildImage(ctx, cli)
	}
	if shared.imgErr != nil {
		t.Fatalf("build test image: %v", shared.imgErr)
	}
	return shared.image
}

// Cleanup removes the shared test image if one was built; TestMain calls
// it after the tests, since the image outlives any one test.
func Cleanup() error {
	shared.imgMu.Lock()
	defer shared.imgMu.Unlock()
	if shared.image == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := RemoveImage(ctx, shared.cli, shared.image)
	shared.image = ""
	return err
}

// BuildImage compiles testprog statically (the working directory must be
// inside this module) and imports it as a one-file image whose entrypoint
// is /prog. The caller removes it with RemoveImage.
func BuildImage(ctx context.Context, cli *client.Client) (string, error) {
	dir, err := os.MkdirTemp("", "bottlecap-testprog")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "prog")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, testprogPkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	tarball, err := tarOf(bin, "prog")
	if err != nil {
		return "", err
	}
	ref := "bottlecap-test-" + RandHex() + ":latest"
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

// RemoveImage removes an image BuildImage made.
func RemoveImage(ctx context.Context, cli *client.Client, ref string) error {
	_, err := cli.ImageRemove(ctx, ref, client.ImageRemoveOptions{Force: true, PruneChildren: true})
	if err != nil {
		return fmt.Errorf("remove test image %s: %w", ref, err)
	}
	return nil
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

// RandHex is a short random suffix for names that must not collide with a
// concurrent run.
func RandHex() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}
