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

// MaxFieldTokens bounds each token field of one report. The largest
// context windows hold a few million tokens, so a trillion is far above any
// real response, and four fields of it (weighted) cannot come near the
// counters' int64 range: a report above it is a bug or an attack, refused.
const MaxFieldTokens int64 = 1_000_000_000_000

// MaxCounted is the most tokens any counter or aggregate holds: sums stop
// there instead of wrapping negative (see SatAdd).
const MaxCounted int64 = math.MaxInt64

// SatAdd returns a+b for the non-negative counts bottlecap keeps, stopping
// at MaxCounted instead of wrapping: a wrapped counter would turn an
// exhausted budget into a negative, allowed one. A negative operand (which
// validation refuses) counts as 0.
func SatAdd(a, b int64) int64 {
	a, b = max(a, 0), max(b, 0)
	if a > MaxCounted-b {
		return MaxCounted
	}
	return a + b
}

// Total is the unweighted number of tokens the response consumed,
// saturating at MaxCounted.
func (u Usage) Total() int64 {
	return SatAdd(SatAdd(u.Input, u.CacheRead), SatAdd(u.CacheWrite, u.Output))
}

// Add returns the field-wise sum of u and v, each saturating at MaxCounted.
func (u Usage) Add(v Usage) Usage {
	return Usage{
		Input:      SatAdd(u.Input, v.Input),
		CacheRead:  SatAdd(u.CacheRead, v.CacheRead),
		CacheWrite: SatAdd(u.CacheWrite, v.CacheWrite),
		Output:     SatAdd(u.Output, v.Output),
		Reasoning:  SatAdd(u.Reasoning, v.Reasoning),
	}
}

// Validate rejects negative counts and counts above MaxFieldTokens, naming
// the offending field as the wire spells it.
func (u Usage) Validate() error {
	for _, f := range u.fields() {
		if f.v < 0 {
			return fmt.Errorf("%w: %s must not be negative (got %d)", ErrInvalid, f.name, f.v)
		}
		if f.v > MaxFieldTokens {
			return fmt.Errorf("%w: %s: %d is above the most one report may carry (%d)", ErrInvalid, f.name, f.v, MaxFieldTokens)
		}
	}
	return nil
}

// CountedFields names the wire fields a report's counted tokens come from,
// for errors about the weighted count (which clients never send).
const CountedFields = "input_tokens, cache_read_tokens, cache_write_tokens and output_tokens"

type usageField struct {
	name string
	v    int64
}

func (u Usage) fields() []usageField {
	return []usageField{
		{"input_tokens", u.Input},
		{"cache_read_tokens", u.CacheRead},
		{"cache_write_tokens", u.CacheWrite},
		{"output_tokens", u.Output},
		{"reasoning_tokens", u.Reasoning},
	}
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
// kind multiplied by its weight, rounded to the nearest whole token, and
// saturating at MaxCounted (a large weight must not wrap the count).
func (u Usage) Counted(w Weights) int64 {
	if w == (Weights{}) {
		w = UnitWeights
	}
	f := float64(u.Input)*w.Input + float64(u.CacheRead)*w.CacheRead +
		float64(u.CacheWrite)*w.CacheWrite + float64(u.Output)*w.Output
	return clampCount(math.Round(f))
}

// clampCount converts a float count to int64 within [0, MaxCounted]; NaN
// counts as 0. float64(MaxCounted) rounds up to 2^63, which int64 cannot
// hold, hence >=.
func clampCount(f float64) int64 {
	switch {
	case math.IsNaN(f) || f <= 0:
		return 0
	case f >= float64(MaxCounted):
		return MaxCounted
	}
	return int64(f)
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

// ValidateReports rejects, with ErrInvalid, a report the ledger cannot
// store: no id, no bottle or a negative count. The store's writer checks
// each submission with it so one bad report cannot fail a whole batch, and
// the daemon checks each report it decodes.
func ValidateReports(reports []Report) error {
	for i, r := range reports {
		if r.ID == "" {
			return fmt.Errorf("%w: report %d: id is required", ErrInvalid, i)
		}
		if r.Bottle == "" {
			return fmt.Errorf("%w: report %s: bottle is required", ErrInvalid, r.ID)
		}
		if err := r.Usage.Validate(); err != nil {
			return fmt.Errorf("report %s: %w", r.ID, err)
		}
		if r.Counted < 0 {
			return fmt.Errorf("%w: report %s: the weighted count of %s must not be negative (got %d)", ErrInvalid, r.ID, CountedFields, r.Counted)
		}
	}
	return nil
}
