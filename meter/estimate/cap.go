package estimate

import (
	"bytes"

	"github.com/bot-bottle/bottlecap/meter/usage"
)

// A request may state the most output it lets the model generate:
// Anthropic's max_tokens, OpenAI Chat's max_completion_tokens (or the
// older max_tokens, also legacy Completions') per choice, the Responses
// API's max_output_tokens,
// Gemini's generationConfig.maxOutputTokens per candidate. Each provider
// stops generating there, reasoning and thinking included, so the meter
// need set aside no more for the request's output (SPEC section 11). The
// cap is read in the scanner's one pass, and only as the provider would
// honour it: where a body says something the meter cannot be sure the
// provider reads the same way, it states no cap, and the meter sets aside
// its usual output slice.

// capField is a member that states part of an output cap.
type capField uint8

const (
	capNone          capField = iota
	capMaxTokens              // max_tokens: Anthropic; OpenAI Chat (legacy)
	capMaxCompletion          // max_completion_tokens: OpenAI Chat
	capMaxOutput              // max_output_tokens: OpenAI Responses
	capChoices                // n: OpenAI Chat's (and legacy Completions') number of choices
	capBestOf                 // best_of: legacy Completions' candidates generated per request
	capGenMaxOutput           // generationConfig.maxOutputTokens: Gemini
	capGenCandidates          // generationConfig.candidateCount: Gemini
	nCapFields
)

// invalidCap is what a cap field holds once any of its values was not a
// positive integer the meter accepts: the body then states no cap.
const invalidCap = -1

// maxStatedCap bounds a stated number: no provider generates anywhere near
// it in one response, so a larger one is not a cap the meter trusts.
const maxStatedCap = 1 << 24

// topCapOf is the cap field of a top-level member of the body.
func topCapOf(key []byte) capField {
	switch string(key) {
	case "max_tokens":
		return capMaxTokens
	case "max_completion_tokens":
		return capMaxCompletion
	case "max_output_tokens":
		return capMaxOutput
	case "n":
		return capChoices
	case "best_of":
		return capBestOf
	}
	return capNone
}

// genCapOf is the cap field of a member of Gemini's generationConfig, in
// either spelling its JSON mapping accepts.
func genCapOf(key []byte) capField {
	switch string(key) {
	case "maxOutputTokens", "max_output_tokens":
		return capGenMaxOutput
	case "candidateCount", "candidate_count":
		return capGenCandidates
	}
	return capNone
}

// topCapNames and genCapNames are the keys that state a cap, at the top of
// a body and in its generationConfig (whose own key counts as one).
var (
	topCapNames = []string{"max_tokens", "max_completion_tokens", "max_output_tokens", "n", "best_of", "generationConfig", "generation_config"}
	genCapNames = []string{"maxOutputTokens", "max_output_tokens", "candidateCount", "candidate_count"}
)

// suspect notes a key the scanner does not take for a cap field that a
// provider's parser may: one with an escape (max\u005ftokens decodes to
// max_tokens), or one that matches a cap field's name but for case (Go's
// encoding/json, which some upstreams decode with, matches keys so). The
// body then states no cap the meter trusts: the provider might read a
// larger one than the scanner did.
func (s *scanner) suspect(key []byte, names []string) {
	if s.c.capsUnsure {
		return
	}
	if bytes.IndexByte(key, '\\') >= 0 {
		s.c.capsUnsure = true
		return
	}
	for _, name := range names {
		if bytes.EqualFold(key, []byte(name)) {
			s.c.capsUnsure = true
			return
		}
	}
}

// parseCap is a literal's value if it is a positive integer written as
// JSON writes one (no sign, fraction, exponent or leading zero) and at
// most maxStatedCap, else invalidCap. A provider may read 200.0 or "200"
// as 200; the meter does not, and sets aside its usual slice instead.
func parseCap(lit []byte) int64 {
	if len(lit) == 0 || lit[0] < '1' || lit[0] > '9' {
		return invalidCap
	}
	var n int64
	for _, c := range lit {
		if c < '0' || c > '9' {
			return invalidCap
		}
		n = n*10 + int64(c-'0')
		if n > maxStatedCap {
			return invalidCap
		}
	}
	return n
}

// state records one value v of cap field c. A field stated twice (JSON
// parsers differ in which duplicate they keep) counts at the larger
// value, and at none if either is not a valid cap.
func (s *scanner) state(c capField, v int64) {
	if c == capNone {
		return
	}
	switch old := s.c.stated[c]; {
	case old == invalidCap || v == invalidCap:
		s.c.stated[c] = invalidCap
	default:
		s.c.stated[c] = max(old, v)
	}
}

// outputCap is the most output tokens the body lets the model generate in
// format f, or 0 when it states no cap the meter trusts.
func outputCap(f usage.Format, c *counts) int64 {
	if c.capsUnsure {
		return 0
	}
	st := &c.stated
	switch f {
	case usage.Anthropic:
		return max(st[capMaxTokens], 0)
	case usage.OpenAIResponses:
		return max(st[capMaxOutput], 0)
	case usage.OpenAIChat:
		// OpenAI refuses both fields at once; a gateway may honour either,
		// so the larger bounds the output. Each of n choices has the cap,
		// and legacy Completions (the same format) generates best_of
		// candidates (at least n) to return n.
		choices := st[capChoices]
		if b := st[capBestOf]; b == invalidCap || choices != invalidCap && b > choices {
			choices = b
		}
		return perChoice(st[capMaxTokens], st[capMaxCompletion], choices)
	case usage.Gemini:
		return perChoice(st[capGenMaxOutput], 0, st[capGenCandidates])
	}
	return 0
}

// perChoice is the cap of a body stating caps a and b per choice (0: not
// stated) for choices choices (0: one), or 0 when any of them is invalid
// or no cap is stated.
func perChoice(a, b, choices int64) int64 {
	if a == invalidCap || b == invalidCap || choices == invalidCap {
		return 0
	}
	return max(a, b) * max(choices, 1) // both at most maxStatedCap: no overflow
}
