// Package dockerlab builds what tests and the benchmark act on in the real
// Docker engine: a one-file image FROM scratch compiled from
// enforcement/internal/testprog (no registry, no base image), bottle
// containers on a network of their own, and their removal. It links no
// testing code, so cmd/bench can use it; enforcement/dockertest wraps it
// for tests. With enforcement it is the only importer of the Docker client.
package dockerlab

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
	"time"

	"github.com/moby/moby/client"

	"github.com/bot-bottle/bottlecap/enforcement"
)

// testprogPkg is the static binary the test image runs.
const testprogPkg = "github.com/bot-bottle/bottlecap/enforcement/internal/testprog"

// engine is one client per process, connected on first use.
var engine struct {
	once sync.Once
	cli  *client.Client
	err  error // why there is no engine
}

// Connect returns the process's client for the engine named by the
// environment, or why none answers (checked once, with a ping).
func Connect() (*client.Client, error) {
	engine.once.Do(func() {
		// The full client, not enforcement.Conn: tests create what they act on.
		engine.cli, engine.err = client.New(client.FromEnv)
		if engine.err != nil {
			engine.err = fmt.Errorf("docker client: %w", engine.err)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if ok, _, err := enforcement.EngineStatus(ctx, engine.cli); !ok {
			engine.err = err
		}
	})
	return engine.cli, engine.err
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
