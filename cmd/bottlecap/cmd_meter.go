package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/meter"
)

// DefaultMeterListen is where `bottlecap meter` listens unless told: the
// loopback only, on a port no provider SDK uses by default.
const DefaultMeterListen = "127.0.0.1:8089"

// meterFlags are `bottlecap meter`'s flags.
type meterFlags struct {
	listen, bottle, agent, socket, queue, logLevel string
	// familyURLs are the --upstream-FAMILY flags, one per provider API.
	familyURLs map[string]*string
	upstreams  upstreamList
	// pass are the unmetered calls the operator lets through (their
	// patterns in the provider table): --pass-unmetered, repeatable, else
	// $BOTTLECAP_PASS_UNMETERED, comma-separated.
	pass       passList
	failOpen   bool
	allowances bool
	countTok   bool
	gateCache  time.Duration
}

// upstreamList collects repeated --upstream FAMILY[:PROVIDER]=URL flags.
type upstreamList []meter.Upstream

func (l *upstreamList) String() string { return "" }

// Type names the flag's value in the usage.
func (l *upstreamList) Type() string { return "upstream" }

func (l *upstreamList) Set(s string) error {
	u, err := meter.ParseUpstream(s)
	if err != nil {
		return err
	}
	*l = append(*l, u)
	return nil
}

// passList collects repeated --pass-unmetered PATTERN flags.
type passList []string

func (l *passList) String() string { return strings.Join(*l, ",") }

// Type names the flag's value in the usage.
func (l *passList) Type() string { return "pattern" }

func (l *passList) Set(s string) error {
	*l = append(*l, strings.TrimSpace(s))
	return nil
}

// passFromEnv is $BOTTLECAP_PASS_UNMETERED's comma-separated patterns.
func passFromEnv(v string) passList {
	var out passList
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// meterCommand is `bottlecap meter`: the metering proxy (SPEC section 9).
func (m *Main) meterCommand() *cobra.Command {
	f := meterFlags{familyURLs: map[string]*string{}}
	cmd := &cobra.Command{
		Use:   "meter",
		Short: "The metering proxy in front of the provider APIs",
		Long: "A reverse proxy for one bottle's agent: point ANTHROPIC_BASE_URL, OPENAI_BASE_URL and the like at it. " +
			"It asks the daemon before each request, forwards it to the provider, reads the usage off the response " +
			"(streams included) and reports it; a request the budget cannot pay for is refused. " +
			"It listens on the loopback unless --listen says otherwise (a sidecar shares the agent's network namespace, or listens on the bottle's internal network).",
		Example: "bottlecap meter --bottle dev-1 --agent implementer\n" +
			"bottlecap meter --bottle dev-1 --listen 0.0.0.0:8089 --upstream openai:pi=http://ollama:11434",
		Args: positional(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.bottle == "" {
				return usageErrorf("--bottle (or $BOTTLECAP_BOTTLE) is required")
			}
			if len(f.pass) == 0 {
				f.pass = passFromEnv(m.Getenv("BOTTLECAP_PASS_UNMETERED"))
			}
			return m.runMeter(cmd.Context(), f)
		},
	}
	m.meterFlagSet(cmd.Flags(), &f)
	return cmd
}

// runMeter runs the metering proxy in the foreground until ctx is
// cancelled (a signal), then stops it: requests in flight get
// shutdownGrace, the report queue meter.DefaultDrain.
func (m *Main) runMeter(ctx context.Context, f meterFlags) error {
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
	mt, err := meter.Start(ctx, meter.Config{
		Listen: f.listen, Bottle: f.bottle, Agent: f.agent, Upstreams: ups, Socket: socket,
		FailOpen: f.failOpen, PassUnmetered: f.pass, Naive: !f.allowances, CountTokens: f.countTok, SpoolPath: f.queue, Log: log, GateCache: gateCache(f.gateCache),
	})
	if err != nil {
		return err
	}
	log.Info("bottlecap meter ready", "listen", mt.Addr().String(), "bottle", f.bottle, "agent", f.agent,
		"socket", socket, "fail_open", f.failOpen, "allowances", f.allowances, "spool", f.queue,
		"pass_unmetered", f.pass.String())
	select {
	case <-ctx.Done():
	case err = <-mt.Served():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if serr := mt.Stop(sctx); err == nil {
		err = serr
	}
	return err
}

// meterFlagSet declares meter's flags into f.
func (m *Main) meterFlagSet(fs *pflag.FlagSet, f *meterFlags) {
	fs.StringVar(&f.listen, "listen", DefaultMeterListen, "`address` to listen on")
	fs.StringVar(&f.bottle, "bottle", m.Getenv("BOTTLECAP_BOTTLE"), "the bottle `slug` usage is charged to (default $BOTTLECAP_BOTTLE)")
	fs.StringVar(&f.agent, "agent", m.Getenv("BOTTLECAP_AGENT"), "the agent `name` (default $BOTTLECAP_AGENT; empty: the bottle's agent)")
	fs.StringVar(&f.socket, "socket", "", "the daemon's socket `path` (default: $BOTTLECAP_SOCKET, settings socket:, $BOT_BOTTLE_HOME/run/bottlecap.sock)")
	fs.StringVar(&f.queue, "queue", "", "spool `file` keeping unacknowledged reports across meter restarts (default: memory only)")
	for _, api := range budget.ProviderAPIs() {
		f.familyURLs[api.Family] = fs.String("upstream-"+api.Family, api.BaseURL, upstreamHelp(api))
	}
	fs.Var(&f.upstreams, "upstream", "an upstream `FAMILY[:PROVIDER]=URL`, repeatable (e.g. openai:pi=http://ollama:11434); overrides --upstream-FAMILY")
	fs.BoolVar(&f.allowances, "allowances", true, "admit a request only against tokens the daemon set aside for it (its input estimate and an output slice), and cut a stream the budget can no longer pay for; false: ask the cached gate and charge after, a soft cap")
	fs.BoolVar(&f.countTok, "count-tokens", false, "with allowances, ask the provider's counting endpoint (Anthropic /v1/messages/count_tokens, OpenAI /v1/responses/input_tokens) for a request's input tokens with the client's credentials, instead of estimating offline (one more upstream call a request; the estimate stands if it fails)")
	fs.DurationVar(&f.gateCache, "gate-cache", meter.DefaultGateCache, "with --allowances=false, reuse the gate's \"allowed\" for this `long` per provider (0: ask on every request)")
	fs.BoolVar(&f.failOpen, "fail-open", false, "forward requests when the daemon cannot be reached (default: refuse them)")
	fs.Var(&f.pass, "pass-unmetered", "let one call that spends tokens bottlecap does not meter (batches, embeddings, images, audio, realtime, provider-run agents: the provider table's list, in integrations/mitmproxy/README.md) through, unmetered, by its `pattern` (e.g. /v1/embeddings); repeatable (default $BOTTLECAP_PASS_UNMETERED, comma-separated; empty: every one is refused with 403)")
	fs.StringVar(&f.logLevel, "log-level", "info", "log `level`: debug, info, warn or error")
}

// upstreamHelp is the help of an --upstream-FAMILY flag: the API's
// endpoints and default provider, from the provider table ("the base `URL` for OpenAI
// (/v1/chat/completions, /v1/responses and its WebSocket, provider codex)").
func upstreamHelp(api budget.ProviderAPI) string {
	var paths []string
	for _, ep := range api.Endpoints {
		p := ep.Path
		switch {
		case p == "/":
			p = "*" + ep.Suffix // any path that ends in the call
		case strings.HasSuffix(p, "/"):
			p += "*" + ep.Suffix // a model name and the call follow
		}
		if ep.WebSocket {
			p += " and its WebSocket"
		}
		if !slices.Contains(paths, p) {
			paths = append(paths, p)
		}
	}
	return fmt.Sprintf("the base `URL` for %s (%s, provider %s)", api.Name, strings.Join(paths, ", "), api.Provider)
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
	for _, api := range budget.ProviderAPIs() {
		u, err := meter.ParseUpstream(api.Family + "=" + *f.familyURLs[api.Family])
		if err != nil {
			return nil, fmt.Errorf("--upstream-%s: %w", api.Family, err)
		}
		out = append(out, u)
	}
	return append(out, f.upstreams...), nil
}
