// Package budget is bottlecap's domain: usage, limits, scopes, policies,
// settings and the resolution of the budget that governs a report. It does no
// I/O and imports nothing of ours; the clock is passed in where time matters.
package budget

import (
	"fmt"
	"math"
	"time"
)

// Usage is one LLM response's token usage, normalised across providers as
// SPEC section 4 describes. Reasoning is a subset of Output and is kept only
// for information; it is never counted twice.
type Usage struct {
	Input      int64 `json:"input_tokens"`
	CacheRead  int64 `json:"cache_read_tokens"`
	CacheWrite int64 `json:"cache_write_tokens"`
	Output     int64 `json:"output_tokens"`
	Reasoning  int64 `json:"reasoning_tokens"`
}

// Total is the unweighted number of tokens the response consumed.
func (u Usage) Total() int64 {
	return u.Input + u.CacheRead + u.CacheWrite + u.Output
}

// Add returns the field-wise sum of u and v.
func (u Usage) Add(v Usage) Usage {
	return Usage{
		Input:      u.Input + v.Input,
		CacheRead:  u.CacheRead + v.CacheRead,
		CacheWrite: u.CacheWrite + v.CacheWrite,
		Output:     u.Output + v.Output,
		Reasoning:  u.Reasoning + v.Reasoning,
	}
}

// Validate rejects negative counts, naming the offending field.
func (u Usage) Validate() error {
	fields := []struct {
		name string
		v    int64
	}{
		{"input_tokens", u.Input},
		{"cache_read_tokens", u.CacheRead},
		{"cache_write_tokens", u.CacheWrite},
		{"output_tokens", u.Output},
		{"reasoning_tokens", u.Reasoning},
	}
	for _, f := range fields {
		if f.v < 0 {
			return fmt.Errorf("%w: %s must not be negative (got %d)", ErrInvalid, f.name, f.v)
		}
	}
	return nil
}

// Weights are per-token-kind multipliers for one provider (settings
// `weights:`). A zero Weights value means "all 1".
type Weights struct {
	Input      float64 `json:"input,omitempty"`
	CacheRead  float64 `json:"cache_read,omitempty"`
	CacheWrite float64 `json:"cache_write,omitempty"`
	Output     float64 `json:"output,omitempty"`
}

// UnitWeights counts every token once.
var UnitWeights = Weights{Input: 1, CacheRead: 1, CacheWrite: 1, Output: 1}

// Counted is the number of tokens a report charges against budgets: each
// kind multiplied by its weight, rounded to the nearest whole token.
func (u Usage) Counted(w Weights) int64 {
	if w == (Weights{}) {
		w = UnitWeights
	}
	f := float64(u.Input)*w.Input + float64(u.CacheRead)*w.CacheRead +
		float64(u.CacheWrite)*w.CacheWrite + float64(u.Output)*w.Output
	return int64(math.Round(f))
}

// Report is one usage report as a sidecar sends it and the ledger stores it.
// ID is the idempotency key: the upstream response id.
type Report struct {
	ID       string    `json:"id"`
	Bottle   string    `json:"bottle"`
	Agent    string    `json:"agent,omitempty"`
	Provider string    `json:"provider,omitempty"`
	Host     string    `json:"host,omitempty"`
	Model    string    `json:"model,omitempty"`
	Usage              // token counts, flattened on the wire
	Complete bool      `json:"complete"`
	TS       time.Time `json:"ts"`
	// Counted is Usage weighted by the provider's weights when the report was
	// accepted; budgets compare against the sum of Counted.
	Counted int64 `json:"counted_tokens"`
}
