package budget_test

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/bot-bottle/bottlecap/budget"
)

func TestSatAdd(t *testing.T) {
	max := budget.MaxCounted
	tests := []struct {
		name       string
		a, b, want int64
	}{
		{"small", 1500, 500, 2000},
		{"to the max", max - 1, 1, max},
		{"past the max", max - 1000, 9223372036854774784, max},
		{"max plus max", max, max, max},
		{"negative counts as zero", -5, 7, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := budget.SatAdd(tt.a, tt.b); got != tt.want {
				t.Errorf("SatAdd(%d, %d) = %d, want %d", tt.a, tt.b, got, tt.want)
			}
		})
	}
}

func TestUsageValidateBounds(t *testing.T) {
	at, over := budget.MaxFieldTokens, budget.MaxFieldTokens+1
	tests := []struct {
		field string
		set   func(*budget.Usage, int64)
	}{
		{"input_tokens", func(u *budget.Usage, n int64) { u.Input = n }},
		{"cache_read_tokens", func(u *budget.Usage, n int64) { u.CacheRead = n }},
		{"cache_write_tokens", func(u *budget.Usage, n int64) { u.CacheWrite = n }},
		{"output_tokens", func(u *budget.Usage, n int64) { u.Output = n }},
		{"reasoning_tokens", func(u *budget.Usage, n int64) { u.Reasoning = n }},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			var u budget.Usage
			tt.set(&u, at)
			if err := u.Validate(); err != nil {
				t.Errorf("%s at the bound (%d): %v", tt.field, at, err)
			}
			for _, bad := range []int64{over, 9e18, math.MaxInt64, -1} {
				tt.set(&u, bad)
				err := u.Validate()
				if !errors.Is(err, budget.ErrInvalid) || !strings.Contains(err.Error(), tt.field) {
					t.Errorf("%s = %d: %v, want ErrInvalid naming %s", tt.field, bad, err, tt.field)
				}
			}
		})
	}
}

func TestCountedSaturates(t *testing.T) {
	maxed := budget.Usage{Input: budget.MaxFieldTokens, CacheRead: budget.MaxFieldTokens, CacheWrite: budget.MaxFieldTokens, Output: budget.MaxFieldTokens}
	tests := []struct {
		name string
		u    budget.Usage
		w    budget.Weights
		want int64
	}{
		{"unit weights", budget.Usage{Input: 656, Output: 74}, budget.Weights{}, 730},
		{"cache read at 0.1 rounds", budget.Usage{CacheRead: 15}, budget.Weights{Input: 1, CacheRead: 0.1, CacheWrite: 1, Output: 1}, 2},
		{"every field at the bound", maxed, budget.UnitWeights, 4 * budget.MaxFieldTokens},
		{"large weight saturates", maxed, budget.Weights{Input: 1e300, CacheRead: 1, CacheWrite: 1, Output: 1}, budget.MaxCounted},
		{"weight just past int64", budget.Usage{Input: 1e12}, budget.Weights{Input: 9.3e6}, budget.MaxCounted},
		{"infinite sum saturates", maxed, budget.Weights{Input: math.MaxFloat64, Output: math.MaxFloat64}, budget.MaxCounted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.u.Counted(tt.w); got != tt.want {
				t.Errorf("Counted = %d, want %d", got, tt.want)
			}
		})
	}
}

// TestBookCountersSaturate is the wrap of the issue in the book itself:
// 1,500 of a 2,000 global budget used, then a count that would wrap int64.
// The counters stop at MaxCounted, the crossing is reported and the gate
// denies, instead of "allowed" with a negative "used".
func TestBookCountersSaturate(t *testing.T) {
	b := budget.NewBook(settings(budget.Nearest, budget.Limits{"claude": budget.Lifetime(2000)}))
	b.Add("b1", "a", "claude", 1500)
	events := b.Record(budget.Report{Bottle: "b1", Agent: "a", Provider: "claude", Counted: 9223372036854774784})
	if len(events) != 1 || events[0].Kind != budget.EventCrossed || events[0].Used != budget.MaxCounted {
		t.Errorf("events %+v, want one crossing at MaxCounted", events)
	}
	v := b.Verdict("b1", "a", "claude", 0)
	if v.Allowed || v.Used != budget.MaxCounted || v.Remaining != 0 {
		t.Errorf("verdict %+v, want denied with used at MaxCounted", v)
	}
	b.Add("b1", "a", "claude", budget.MaxCounted)
	if agent, subtree, global := b.Used("b1", "a", "claude"); agent != budget.MaxCounted || subtree != 0 || global != budget.MaxCounted {
		t.Errorf("used %d/%d/%d, want agent and global saturated (b1 is unregistered: no subtree)", agent, subtree, global)
	}
}

// TestValidateReportsBounds holds the ledger to the same per-field bound as
// ingest, naming the wire field.
func TestValidateReportsBounds(t *testing.T) {
	ok := budget.Report{ID: "a", Bottle: "b1", Agent: "ag", Provider: "claude", Counted: 1}
	ok.Usage = budget.Usage{Input: budget.MaxFieldTokens, Output: budget.MaxFieldTokens, Reasoning: budget.MaxFieldTokens}
	if err := budget.ValidateReports([]budget.Report{ok}); err != nil {
		t.Errorf("fields at the bound: %v", err)
	}
	over := ok
	over.Reasoning = budget.MaxFieldTokens + 1
	err := budget.ValidateReports([]budget.Report{over})
	if !errors.Is(err, budget.ErrInvalid) || !strings.Contains(err.Error(), "reasoning_tokens") {
		t.Errorf("reasoning over the bound: %v, want ErrInvalid naming reasoning_tokens", err)
	}
	neg := ok
	neg.Counted = math.MinInt64
	if err := budget.ValidateReports([]budget.Report{neg}); err == nil || strings.Contains(err.Error(), "counted_tokens") {
		t.Errorf("negative weighted count: %v, want an error naming the token fields, not counted_tokens", err)
	}
}
