package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"time"

	"github.com/bot-bottle/bottlecap/internal/copybuf"
)

// The proxies the meter benchmark compares each run as their own process,
// as they would in production, so that none shares a heap, a garbage
// collector or a scheduler with the load generator or with another proxy.
// The plain proxies are this binary re-executed with proxyChildEnv set.
const (
	proxyChildEnv    = "BOTTLECAP_BENCH_PROXY"    // "plain" or "pooled"
	proxyUpstreamEnv = "BOTTLECAP_BENCH_UPSTREAM" // the upstream's URL
)

// runProxyChild serves a plain httputil.ReverseProxy (with pooled copy
// buffers for "pooled") in front of the upstream, prints its URL on stdout
// and serves until stdin closes (the parent went away or stopped it).
func runProxyChild(kind string) error {
	u, err := url.Parse(os.Getenv(proxyUpstreamEnv))
	if err != nil {
		return err
	}
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(u) }, Transport: benchTransport(), FlushInterval: -1}
	switch kind {
	case "plain":
	case "pooled":
		rp.BufferPool = copybuf.Pool{}
	default:
		return fmt.Errorf("%s=%q: want plain or pooled", proxyChildEnv, kind)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Printf("http://%s\n", l.Addr())
	go http.Serve(l, rp)
	io.Copy(io.Discard, os.Stdin)
	return nil
}

// procServer is a proxy running as a child process.
type procServer struct {
	URL string
	cmd *exec.Cmd
}

// startProxyProc starts a plain proxy child of kind in front of upstream.
func startProxyProc(ctx context.Context, kind, upstream string) (*procServer, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, self)
	cmd.Env = append(os.Environ(), proxyChildEnv+"="+kind, proxyUpstreamEnv+"="+upstream)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Cancel = func() error { return stdin.Close() } // stop: stdin closes; set before Start, which reads it
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &procServer{cmd: cmd}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		stdin.Close()
		cmd.Wait()
		return nil, fmt.Errorf("%s proxy did not start: %w", kind, err)
	}
	p.URL = line[:len(line)-1]
	return p, nil
}

// startMeterProc runs `bottlecap meter` for the benchmark's bottle in front
// of upstream, reporting to the daemon at sock, and waits until it answers.
func startMeterProc(ctx context.Context, r *runner, sock, upstream string, flags ...string) (*procServer, error) {
	bin, err := daemonBinary(ctx, r)
	if err != nil {
		return nil, err
	}
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	args := append([]string{"meter", "--listen", addr, "--bottle", meterBenchSlug, "--agent", "bench",
		"--socket", sock, "--upstream-anthropic", upstream, "--upstream-openai", upstream, "--log-level", "warn"}, flags...)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "GOGC=400")
	cmd.Stderr = os.Stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) } // drains its queue
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &procServer{URL: "http://" + addr, cmd: cmd}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get(p.URL + "/v1/models") // unmetered: needs only the upstream
		if err == nil {
			resp.Body.Close()
			return p, nil
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("bottlecap meter did not answer on %s: %w", addr, err)
		}
	}
}

// stop ends the child the way its Cancel says and waits for it.
func (p *procServer) stop() {
	if p == nil {
		return
	}
	p.cmd.Cancel()
	p.cmd.Wait()
}

// freePort is a loopback address no one listens on right now.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
