// Package estimate predicts the tokens of a request before it is sent and
// of a stream that stopped before the provider counted it (SPEC sections 4
// and 11), so the meter can ask for an allowance that covers a request and
// bill a cut stream no less than what passed.
//
// It reads the JSON body in one pass, offline and without decoding it:
// the text the model reads (message contents, system prompts, tool
// definitions and results, keys and numbers included) is counted in bytes,
// images at a fixed price each, and bytes become tokens through a ratio
// that starts from a per-family prior biased high and is then learned per
// (provider, model) from the counts the provider reports. A safety margin
// proportional to the error observed so far is added on top, so the
// estimate errs high while it converges. Output is estimated the same way
// from the bytes of generated content a stream passed (meter/usage counts
// them).
//
// An [Estimator] does no I/O and is safe for concurrent use; its state is a
// few hundred ratios at most.
package estimate
