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

// Upstream is where one provider API's requests go and which budget
// provider they count against, so a renamed provider (pi on an
// OpenAI-compatible server) is metered under its own budget. Family names
// the API in budget.ProviderAPIs: anthropic, openai, chatgpt or gemini.
type Upstream struct {
	Family   string
	Provider string
	URL      *url.URL
}

// DefaultUpstreams are the public provider APIs of budget.ProviderAPIs
// under their default budget provider names (SPEC section 2).
func DefaultUpstreams() []Upstream {
	var out []Upstream
	for _, api := range budget.ProviderAPIs() {
		out = append(out, Upstream{Family: api.Family, Provider: api.Provider, URL: mustURL(api.BaseURL)})
	}
	return out
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// namedAPI is the API an operator names before "=" in --upstream: by its
// family, or by its default provider, which names the provider's first
// API ("codex" is openai; the ChatGPT backend is named chatgpt).
func namedAPI(name string) (budget.ProviderAPI, bool) {
	apis := budget.ProviderAPIs()
	for _, api := range apis {
		if name == api.Family {
			return api, true
		}
	}
	for _, api := range apis {
		if name == api.Provider {
			return api, true
		}
	}
	return budget.ProviderAPI{}, false
}

// familyList lists the API families for messages: "anthropic, openai or
// gemini".
func familyList() string {
	var names []string
	for _, api := range budget.ProviderAPIs() {
		names = append(names, api.Family)
	}
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
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
	api, ok := namedAPI(fam)
	if !ok {
		return Upstream{}, fmt.Errorf("%w: upstream %q: unknown family %q (want %s)", budget.ErrInvalid, s, fam, familyList())
	}
	up := Upstream{Family: api.Family, Provider: api.Provider}
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

// Daemon is what the meter needs of the budget daemon: allowances (or,
// in naive mode, the gate), ingest, and the bottle's events (its state
// changes end streams in flight). *client.Client satisfies it; tests may
// use a fake.
type Daemon interface {
	Verdict(ctx context.Context, q client.VerdictQuery) (budget.Verdict, error)
	Ingest(ctx context.Context, reports []api.Report) (api.IngestReply, error)
	Allow(ctx context.Context, a api.AllowanceRequest) (api.Allowance, error)
	ReleaseAllowance(ctx context.Context, id string) error
	BottleEvents(ctx context.Context, slug string) (*client.EventStream, error)
}

var _ Daemon = (*client.Client)(nil)

// Defaults of Config's optional fields.
const (
	DefaultGateTimeout = 2 * time.Second
	DefaultGateCache   = 100 * time.Millisecond
	DefaultQueueLimit  = 100_000
	DefaultDrain       = 5 * time.Second
)

// Config is everything a Proxy (and a started Meter) is built from.
type Config struct {
	// Listen is the address Start listens on (host:port).
	Listen string
	// Bottle and Agent name who spends: every gate question and report
	// carries them.
	Bottle string
	Agent  string
	// Upstreams override DefaultUpstreams per family.
	Upstreams []Upstream
	// Daemon is the budget daemon. When nil, the proxy dials Socket itself
	// (a client that does not retry, so the gate answers within
	// GateTimeout) and closes it on Close.
	Daemon Daemon
	// Socket is the daemon's socket, used when Daemon is nil.
	Socket string
	// FailOpen forwards requests when the daemon cannot be asked; the
	// default refuses them (fail closed).
	FailOpen bool
	// Naive admits requests on the cached gate and charges them after
	// they end, as before SPEC section 11 (--allowances=false): the budget
	// is then a soft cap that every request in flight at its crossing runs
	// past, and a stream runs to its end whatever happens to the bottle
	// (the engine's cutoff still stops the container). The default spends
	// only against allowances the daemon granted and cuts streams.
	Naive bool
	// CountTokens asks the provider's own counting endpoint (Anthropic
	// Messages, OpenAI Responses), with the client's credentials, for the
	// input tokens of each request it admits, instead of the offline
	// estimate; the estimate stands when the endpoint fails. It costs one
	// more upstream call per request.
	CountTokens bool
	// PassUnmetered names, by their patterns in the provider table, the
	// unmetered calls (budget.ProviderAPI.Unmetered) the operator lets
	// through: forwarded as they are, their tokens unseen by the budget.
	// Every other one is refused with 403 (fail closed).
	PassUnmetered []string
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
	// Drain bounds how long Meter.Stop lets the queue deliver what it
	// holds; zero is DefaultDrain.
	Drain time.Duration
	// Transport reaches the upstreams; nil uses a tuned http.Transport.
	Transport http.RoundTripper
	// Log receives operational messages (never bodies); nil discards.
	Log *slog.Logger
	// Now is the clock of report timestamps; nil is time.Now.
	Now func() time.Time
}

// withDefaults fills the optional fields and checks the required ones.
func (c Config) withDefaults() (Config, error) {
	if c.Daemon == nil && c.Socket == "" {
		return c, fmt.Errorf("%w: meter: no daemon client or socket", budget.ErrInvalid)
	}
	if err := budget.ValidateName("bottle", c.Bottle); err != nil {
		return c, err
	}
	if err := checkPassUnmetered(c.PassUnmetered); err != nil {
		return c, err
	}
	if c.GateTimeout <= 0 {
		c.GateTimeout = DefaultGateTimeout
	}
	if c.GateCache == 0 {
		c.GateCache = DefaultGateCache
	}
	if c.Drain <= 0 {
		c.Drain = DefaultDrain
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

// upstream is a configured Upstream with the row of the provider table it
// speaks: its endpoints, and the error shape its clients parse.
type upstream struct {
	Upstream
	api budget.ProviderAPI
	// pool is the allowance its provider's requests spend against (nil in
	// naive mode); upstreams of one provider share it.
	pool *pool
}

// upstreams merges c.Upstreams over the defaults, one per API, in the
// table's order.
func (c Config) upstreams() ([]*upstream, error) {
	byFamily := map[string]Upstream{}
	for _, list := range [][]Upstream{DefaultUpstreams(), c.Upstreams} {
		for _, u := range list {
			if api, ok := namedAPI(u.Family); !ok || api.Family != u.Family || u.URL == nil {
				return nil, fmt.Errorf("%w: meter: upstream %q: want a family (%s) and a URL", budget.ErrInvalid, u.Family, familyList())
			}
			byFamily[u.Family] = u
		}
	}
	var out []*upstream
	for _, api := range budget.ProviderAPIs() {
		out = append(out, &upstream{Upstream: byFamily[api.Family], api: api})
	}
	return out, nil
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
