package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/bot-bottle/bottlecap/client"
)

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// daemonBinary builds bottlecap once per bench run, into the run's scratch
// directory.
func daemonBinary(ctx context.Context, r *runner) (string, error) {
	buildOnce.Do(func() {
		builtBin = filepath.Join(r.dir, "bottlecap")
		out, err := exec.CommandContext(ctx, "go", "build", "-o", builtBin, "./cmd/bottlecap").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("build bottlecap: %v\n%s", err, out)
		}
	})
	return builtBin, buildErr
}

// procDaemon is `bottlecap serve` running as its own process on a
// temporary home, as in production: its own heap and garbage collector,
// reached only over the socket.
type procDaemon struct {
	home string
	sock string
	cmd  *exec.Cmd
}

// startProcDaemon runs the daemon with settings (YAML, may be empty) and
// waits until it answers.
func startProcDaemon(ctx context.Context, r *runner, settings string) (*procDaemon, error) {
	bin, err := daemonBinary(ctx, r)
	if err != nil {
		return nil, err
	}
	home, err := os.MkdirTemp("", "bcd") // short: unix socket paths are limited
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(home, "settings.yml"), []byte(settings), 0o644); err != nil {
		return nil, err
	}
	d := &procDaemon{home: home, sock: filepath.Join(home, "run", "bottlecap.sock")}
	d.cmd = exec.CommandContext(ctx, bin, "serve", "--docker=false", "--log-level=warn")
	d.cmd.Env = append(os.Environ(), "BOT_BOTTLE_HOME="+home, "BOTTLECAP_SOCKET=")
	d.cmd.Stderr = os.Stderr
	if err := d.cmd.Start(); err != nil {
		os.RemoveAll(home)
		return nil, err
	}
	c := client.New(d.sock, client.WithRetry(20*time.Second))
	defer c.Close()
	if _, err := c.Status(ctx); err != nil {
		d.stop()
		return nil, fmt.Errorf("daemon did not come up: %w", err)
	}
	return d, nil
}

// stop shuts the daemon down as SIGINT does and removes its home.
func (d *procDaemon) stop() {
	d.cmd.Process.Signal(os.Interrupt)
	d.cmd.Wait()
	os.RemoveAll(d.home)
}
