package meter

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/client"
)

// Family is a provider's wire family: it decides which request paths go to
// an upstream and which error shape its clients understand.
type Family string

// The wire families the meter speaks.
const (
	Anthropic Family = "anthropic" // /v1/messages
	OpenAI    Family = "openai"    // /v1/chat/completions, /v1/responses
	Gemini    Family = "gemini"    // /v1beta/models/*
)

// Upstream is where one family's requests go and which budget provider
// they count against, so a renamed provider (pi on an OpenAI-compatible
// server) is metered under its own budget.
type Upstream struct {
	Family   Family
	Provider string
	URL      *url.URL
}

// DefaultUpstreams are the public provider APIs under the default budget
// provider names of SPEC section 2.
func DefaultUpstreams() []Upstream {
	return []Upstream{
		{Anthropic, "claude", mustURL("https://api.anthropic.com")},
		{OpenAI, "codex", mustURL("https://api.openai.com")},
		{Gemini, "gemini", mustURL("https://generativelanguage.googleapis.com")},
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// familyAliases maps what an operator may write before "=" in
// --upstream to a family and its default provider.
var familyAliases = map[string]Upstream{
	"anthropic": {Family: Anthropic, Provider: "claude"},
	"claude":    {Family: Anthropic, Provider: "claude"},
	"openai":    {Family: OpenAI, Provider: "codex"},
	"codex":     {Family: OpenAI, Provider: "codex"},
	"gemini":    {Family: Gemini, Provider: "gemini"},
}

// ParseUpstream reads the --upstream flag form FAMILY[:PROVIDER]=URL
// ("openai=https://api.openai.com", "openai:pi=http://ollama:11434"), so one
// flag covers every family and renames the budget provider when needed.
func ParseUpstream(s string) (Upstream, error) {
	name, raw, ok := strings.Cut(s, "=")
	if !ok {
		return Upstream{}, fmt.Errorf("%w: upstream %q: want FAMILY[:PROVIDER]=URL", budget.ErrInvalid, s)
	}
	fam, provider, _ := strings.Cut(strings.ToLower(strings.TrimSpace(name)), ":")
	up, ok := familyAliases[fam]
	if !ok {
		return Upstream{}, fmt.Errorf("%w: upstream %q: unknown family %q (want anthropic, openai or gemini)", budget.ErrInvalid, s, fam)
	}
	if provider != "" {
		if err := budget.ValidateName("provider", provider); err != nil {
			return Upstream{}, err
		}
		up.Provider = provider
	}
	u, err := ParseURL(raw)
	if err != nil {
		return Upstream{}, err
	}
	up.URL = u
	return up, nil
}

// ParseURL checks an upstream base URL: absolute http(s), no query, so a
// typo fails at start-up rather than on the first request.
func ParseURL(s string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
		return nil, fmt.Errorf("%w: upstream URL %q: want http(s)://host[:port][/base-path]", budget.ErrInvalid, s)
	}
	return u, nil
}

// Daemon is what the meter needs of the budget daemon: the gate and
// ingest. *client.Client satisfies it; tests may use a fake.
type Daemon interface {
	Verdict(ctx context.Context, q client.VerdictQuery) (budget.Verdict, error)
	Ingest(ctx context.Context, reports []api.Report) (api.IngestReply, error)
}

var _ Daemon = (*client.Client)(nil)

// Defaults of Config's optional fields.
const (
	DefaultGateTimeout = 2 * time.Second
	DefaultGateCache   = 100 * time.Millisecond
	DefaultQueueLimit  = 100_000
	DefaultDrain       = 5 * time.Second
)

// Config is everything a Proxy is built from.
type Config struct {
	// Bottle and Agent name who spends: every gate question and report
	// carries them.
	Bottle string
	Agent  string
	// Upstreams override DefaultUpstreams per family.
	Upstreams []Upstream
	// Daemon is the budget daemon; required.
	Daemon Daemon
	// FailOpen forwards requests when the daemon cannot be asked; the
	// default refuses them (fail closed).
	FailOpen bool
	// SpoolPath, when set, keeps unacknowledged reports in an append-only
	// file replayed on start, so they survive a meter restart.
	SpoolPath string
	// QueueLimit bounds the reports waiting for the daemon.
	QueueLimit int
	// GateTimeout bounds one gate question.
	GateTimeout time.Duration
	// GateCache is how long an "allowed" answer of the gate is reused for
	// the same provider, so a burst of requests asks once; zero uses
	// DefaultGateCache and a negative value asks on every request. Denials
	// are never reused.
	GateCache time.Duration
	// Transport reaches the upstreams; nil uses a tuned http.Transport.
	Transport http.RoundTripper
	// Log receives operational messages (never bodies); nil discards.
	Log *slog.Logger
	// Now is the clock of report timestamps; nil is time.Now.
	Now func() time.Time
}

// withDefaults fills the optional fields and checks the required ones.
func (c Config) withDefaults() (Config, error) {
	if c.Daemon == nil {
		return c, fmt.Errorf("%w: meter: no daemon client", budget.ErrInvalid)
	}
	if err := budget.ValidateName("bottle", c.Bottle); err != nil {
		return c, err
	}
	if c.GateTimeout <= 0 {
		c.GateTimeout = DefaultGateTimeout
	}
	if c.GateCache == 0 {
		c.GateCache = DefaultGateCache
	}
	if c.QueueLimit <= 0 {
		c.QueueLimit = DefaultQueueLimit
	}
	if c.Transport == nil {
		c.Transport = newTransport()
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}

// upstreams merges c.Upstreams over the defaults, one per family.
func (c Config) upstreams() map[Family]*Upstream {
	out := map[Family]*Upstream{}
	for _, list := range [][]Upstream{DefaultUpstreams(), c.Upstreams} {
		for _, u := range list {
			out[u.Family] = &u
		}
	}
	return out
}

// newTransport is the upstream transport: proxies from the environment
// (the egress may chain), many idle connections for concurrent agents, and
// no transparent decompression, since the meter passes bodies through as
// they are.
func newTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 256
	t.MaxIdleConnsPerHost = 64
	t.DisableCompression = true
	return t
}
