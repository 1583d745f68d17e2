package estimate

import (
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/meter/usage"
)

// Floor is the usage to report for a response, never less than what passed
// (SPEC section 4): a complete response's own counts; for one that ended
// early, the provider's input counts if they arrived, else the request's
// estimate in, and the larger of the provider's output count (Anthropic's
// placeholder, Gemini's count so far) and out, the output estimated from the
// deltas that passed (Estimator.Output of res.DeltaBytes).
func Floor(res usage.Result, in Estimate, out int64) budget.Usage {
	u := res.Usage
	if res.Complete {
		return u
	}
	if !res.HasInput {
		u.Input, u.CacheRead, u.CacheWrite = in.Tokens, 0, 0
	}
	u.Output = max(u.Output, out)
	return u
}
