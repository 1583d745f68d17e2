package simhost

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
)

// Hosts are the upstream API hosts of the simulated providers.
var Hosts = map[string]string{"claude": "api.anthropic.com", "codex": "api.openai.com", "gemini": "generativelanguage.googleapis.com"}

// Usage is one response's token counts, like real ones: Claude Code turns
// read most of their prompt from the cache; Codex (and other OpenAI-shaped)
// turns reason before they answer. Output includes Reasoning, as the
// daemon normalises OpenAI's counts.
func Usage(provider string) budget.Usage {
	if provider == "claude" {
		return budget.Usage{Input: 2 + rand.Int64N(12), CacheWrite: 300 + rand.Int64N(4000),
			CacheRead: 18_000 + rand.Int64N(70_000), Output: 120 + rand.Int64N(1400)}
	}
	in := 12_000 + rand.Int64N(40_000)
	cached := in * (60 + rand.Int64N(35)) / 100
	out := 200 + rand.Int64N(2500)
	return budget.Usage{Input: in - cached, CacheRead: cached, Output: out, Reasoning: out * 2 / 3}
}

// Response is one upstream response body carrying Usage(provider) in the
// provider's own JSON (Anthropic Messages for claude, OpenAI Responses
// otherwise), which the daemon normalises as it does a sidecar's raw
// report; id is the response's upstream id and host its API host.
func Response(provider string) (id, host string, body json.RawMessage) {
	u := Usage(provider)
	var v any
	if provider == "claude" {
		id = fmt.Sprintf("msg_01%016x%08x", rand.Uint64(), rand.Uint32())
		v = map[string]any{"id": id, "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
			"stop_reason": "tool_use", "content": []any{},
			"usage": map[string]int64{"input_tokens": u.Input, "cache_creation_input_tokens": u.CacheWrite,
				"cache_read_input_tokens": u.CacheRead, "output_tokens": u.Output}}
	} else {
		id = fmt.Sprintf("resp_%016x%016x", rand.Uint64(), rand.Uint64())
		in := u.Input + u.CacheRead
		v = map[string]any{"id": id, "object": "response", "model": "gpt-5-codex", "status": "completed",
			"usage": map[string]any{"input_tokens": in, "input_tokens_details": map[string]int64{"cached_tokens": u.CacheRead},
				"output_tokens": u.Output, "output_tokens_details": map[string]int64{"reasoning_tokens": u.Reasoning},
				"total_tokens": in + u.Output}}
	}
	body, _ = json.Marshal(v) // maps of strings and numbers always marshal
	return id, Hosts[provider], body
}

// reportAgents and reportProviders are what Report draws from.
var (
	reportAgents    = []string{"implementer", "reviewer", "planner"}
	reportProviders = []string{"claude", "codex", "gemini"}
)

// Report is one complete, already normalised report as the ledger stores
// it: a fresh upstream id, one of 100 bottles, a few agents and providers,
// Usage's token counts, counted unweighted. The benchmarks fill ledgers
// with it.
func Report() budget.Report {
	p := reportProviders[rand.IntN(len(reportProviders))]
	u := Usage(p)
	return budget.Report{
		ID:       fmt.Sprintf("msg_%016x%08x", rand.Uint64(), rand.Uint32()),
		Bottle:   fmt.Sprintf("implementer-%05d", rand.IntN(100)),
		Agent:    reportAgents[rand.IntN(len(reportAgents))],
		Provider: p, Host: Hosts[p], Model: p + "-model-4-5",
		Usage: u, Complete: true, TS: time.Now(), Counted: u.Total(),
	}
}

// WireUsage is the usage every WireReports report carries: one typical
// Claude turn, the same each time, so that the bytes on the wire and the
// daemon's work per report are the same every benchmark run.
var WireUsage = budget.Usage{Input: 656, Output: 74, CacheRead: 1200}

// WireReports are n reports as a sidecar sends them over the socket, for
// load on the daemon: ids prefix-000 … (unique while prefixes are), report
// k for bottle(k), agent "impl" on claude, each with WireUsage.
func WireReports(prefix string, n int, bottle func(k int) string) []api.Report {
	out := make([]api.Report, n)
	for k := range out {
		out[k] = api.Report{Report: budget.Report{
			ID: fmt.Sprintf("%s-%03d", prefix, k), Bottle: bottle(k), Agent: "impl", Provider: "claude",
			Model: "claude-sonnet-4-5", Usage: WireUsage,
		}}
	}
	return out
}
