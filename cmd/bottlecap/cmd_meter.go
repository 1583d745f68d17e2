package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/bot-bottle/bottlecap/client"
	"github.com/bot-bottle/bottlecap/meter"
)

// DefaultMeterListen is where `bottlecap meter` listens unless told: the
// loopback only, on a port no provider SDK uses by default.
const DefaultMeterListen = "127.0.0.1:8089"

// meterFlags are `bottlecap meter`'s flags.
type meterFlags struct {
	listen, bottle, agent, socket, queue, logLevel string
	anthropic, openai, gemini                      string
	upstreams                                      upstreamList
	failOpen                                       bool
	gateCache                                      time.Duration
}

// upstreamList collects repeated --upstream FAMILY[:PROVIDER]=URL flags.
type upstreamList []meter.Upstream

func (l *upstreamList) String() string { return "" }

func (l *upstreamList) Set(s string) error {
	u, err := meter.ParseUpstream(s)
	if err != nil {
		return err
	}
	*l = append(*l, u)
	return nil
}

// runMeter runs the metering proxy in the foreground until ctx is cancelled.
func (m *Main) runMeter(ctx context.Context, args []string) error {
	f, err := m.parseMeterFlags(args)
	if err != nil {
		return err
	}
	log, err := m.logger(f.logLevel)
	if err != nil {
		return err
	}
	ups, err := f.upstreamConfig()
	if err != nil {
		return err
	}
	tuneGC(m.Getenv)
	socket := m.socketPath(f.socket)
	dc := client.New(socket, client.WithRetry(0), client.WithTimeout(10*time.Second))
	defer dc.Close()
	p, err := meter.New(meter.Config{
		Bottle: f.bottle, Agent: f.agent, Upstreams: ups, Daemon: dc,
		FailOpen: f.failOpen, SpoolPath: f.queue, Log: log, GateCache: gateCache(f.gateCache),
	})
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", f.listen)
	if err != nil {
		p.Close(context.Background())
		return fmt.Errorf("listen on %s: %w", f.listen, err)
	}
	log.Info("bottlecap meter ready", "listen", l.Addr().String(), "bottle", f.bottle, "agent", f.agent,
		"socket", socket, "fail_open", f.failOpen, "spool", f.queue)
	return serveMeter(ctx, l, p)
}

func (m *Main) parseMeterFlags(args []string) (meterFlags, error) {
	var f meterFlags
	fs := m.flags("meter")
	fs.StringVar(&f.listen, "listen", DefaultMeterListen, "`address` to listen on")
	fs.StringVar(&f.bottle, "bottle", m.Getenv("BOTTLECAP_BOTTLE"), "the bottle `slug` usage is charged to (default $BOTTLECAP_BOTTLE)")
	fs.StringVar(&f.agent, "agent", m.Getenv("BOTTLECAP_AGENT"), "the agent `name` (default $BOTTLECAP_AGENT; empty: the bottle's agent)")
	fs.StringVar(&f.socket, "socket", "", "the daemon's socket `path` (default: $BOTTLECAP_SOCKET, settings socket:, $BOT_BOTTLE_HOME/run/bottlecap.sock)")
	fs.StringVar(&f.queue, "queue", "", "spool `file` keeping unacknowledged reports across meter restarts (default: memory only)")
	fs.StringVar(&f.anthropic, "upstream-anthropic", "https://api.anthropic.com", "Anthropic `URL` (/v1/messages, provider claude)")
	fs.StringVar(&f.openai, "upstream-openai", "https://api.openai.com", "OpenAI `URL` (/v1/chat/completions, /v1/responses and its WebSocket, provider codex)")
	fs.StringVar(&f.gemini, "upstream-gemini", "https://generativelanguage.googleapis.com", "Gemini `URL` (/v1beta/models/*, provider gemini)")
	fs.Var(&f.upstreams, "upstream", "FAMILY[:PROVIDER]=URL, repeatable (e.g. openai:pi=http://ollama:11434); overrides --upstream-FAMILY")
	fs.DurationVar(&f.gateCache, "gate-cache", meter.DefaultGateCache, "reuse the gate's \"allowed\" for this `long` per provider (0: ask on every request)")
	fs.BoolVar(&f.failOpen, "fail-open", false, "forward requests when the daemon cannot be reached (default: refuse them)")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: bottlecap meter --bottle SLUG [flags]")
		fs.PrintDefaults()
	}
	if _, err := m.parseArgs(fs, args, 0, 0); err != nil {
		return f, err
	}
	if f.bottle == "" {
		return f, m.usageError(fs, "--bottle (or $BOTTLECAP_BOTTLE) is required")
	}
	return f, nil
}

// gateCache maps the flag's 0 ("ask every time") to the Config's negative.
func gateCache(d time.Duration) time.Duration {
	if d <= 0 {
		return -1
	}
	return d
}

// upstreamConfig is the per-family flags, then the generic ones over them.
func (f meterFlags) upstreamConfig() ([]meter.Upstream, error) {
	var out []meter.Upstream
	for _, s := range []string{"anthropic=" + f.anthropic, "openai=" + f.openai, "gemini=" + f.gemini} {
		u, err := meter.ParseUpstream(s)
		if err != nil {
			return nil, fmt.Errorf("--upstream-%s: %w", s[:strings.IndexByte(s, '=')], err)
		}
		out = append(out, u)
	}
	return append(out, f.upstreams...), nil
}

// serveMeter serves until ctx ends, then stops taking requests, lets those
// in flight finish (bounded), and drains the report queue (bounded).
func serveMeter(ctx context.Context, l net.Listener, p *meter.Proxy) error {
	srv := &http.Server{Handler: p, ReadHeaderTimeout: 30 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-served:
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if serr := srv.Shutdown(sctx); serr != nil && err == nil && !errors.Is(serr, context.DeadlineExceeded) {
		err = serr
	}
	dctx, dcancel := context.WithTimeout(context.Background(), meter.DefaultDrain)
	defer dcancel()
	if cerr := p.Close(dctx); cerr != nil && err == nil {
		err = cerr
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}
