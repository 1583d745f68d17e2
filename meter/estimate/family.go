package estimate

import (
	"strings"

	"github.com/bot-bottle/bottlecap/meter/usage"
)

// family is a tokenizer family: what a byte of text costs before anything
// was learned, and what an image costs.
type family uint8

const (
	familyUnknown family = iota
	familyOpenAI
	familyAnthropic
	familyGemini
)

// prior is a family's starting point, before any report taught a ratio.
// bytesPerToken is in counted bytes (see weigh: JSON escapes as written,
// keys included), a little below what the family's tokenizer averages on
// coding-agent bodies, so that with the starting margin (2 × priorErr, 20%)
// an estimate from the prior errs high by roughly a quarter; imageTokens is
// about the largest image the family bills at its default settings.
type prior struct {
	bytesPerToken float64
	imageTokens   int64
	// toolsTokens is the hidden system prompt a family adds when a request
	// defines tools.
	toolsTokens int64
}

// priors, one per family:
//   - OpenAI (o200k, cl100k): o200k cuts Go source into 3.5 bytes a token
//     and English into ~4.2; a coding agent's Chat body (testdata) counts
//     3.8 bytes a token of the o200k reference: 3.6. An image costs at
//     most 1,105 tokens at high detail on gpt-4o, and up to 1,536 patches
//     × 1.62 ≈ 2,500 on gpt-4.1-mini and o4-mini: 2,500.
//   - Anthropic: Claude's tokenizer cuts the same text into 10–30% more
//     tokens than OpenAI's: 3.0. An image costs width × height / 750
//     tokens, about 1,600 at the default size limit: 2,000. Tool use adds
//     a system prompt of ~350 tokens: 500.
//   - Gemini: a 256k-entry SentencePiece vocabulary, close to o200k: 3.6.
//     An image costs 258 tokens a 768-pixel tile (1,120 at high resolution
//     on Gemini 3): 1,600.
//   - Unknown: the most conservative of them.
var priors = [...]prior{
	familyUnknown:   {bytesPerToken: 3.0, imageTokens: 2500, toolsTokens: 500},
	familyOpenAI:    {bytesPerToken: 3.6, imageTokens: 2500},
	familyAnthropic: {bytesPerToken: 3.0, imageTokens: 2000, toolsTokens: 500},
	familyGemini:    {bytesPerToken: 3.6, imageTokens: 1600},
}

// familyOf picks the family from the model name when it tells (an OpenAI
// gateway may serve Claude), else from the wire format.
func familyOf(f usage.Format, model string) family {
	if fam := familyOfModel(model); fam != familyUnknown {
		return fam
	}
	switch f {
	case usage.OpenAIChat, usage.OpenAIResponses:
		return familyOpenAI
	case usage.Anthropic:
		return familyAnthropic
	case usage.Gemini:
		return familyGemini
	}
	return familyUnknown
}

// familyOfModel recognises the common model names, with or without a
// gateway's vendor prefix ("anthropic/claude-sonnet-4").
func familyOfModel(model string) family {
	m := strings.ToLower(model)
	if i := strings.LastIndexByte(m, '/'); i >= 0 {
		m = m[i+1:]
	}
	switch {
	case strings.HasPrefix(m, "claude"):
		return familyAnthropic
	case strings.HasPrefix(m, "gemini"), strings.HasPrefix(m, "gemma"):
		return familyGemini
	case strings.HasPrefix(m, "gpt"), strings.HasPrefix(m, "chatgpt"), strings.HasPrefix(m, "codex"),
		len(m) > 1 && m[0] == 'o' && '1' <= m[1] && m[1] <= '9':
		return familyOpenAI
	}
	return familyUnknown
}
