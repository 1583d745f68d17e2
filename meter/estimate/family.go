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

// prior is a family's starting point. bytesPerToken is set below what the
// tokenizer averages on coding-agent traffic (prose ~4 bytes a token, code
// ~3.5, JSON and diffs ~3), so an estimate from the prior errs high;
// imageTokens is about the largest image the family bills by default.
type prior struct {
	bytesPerToken float64
	imageTokens   int64
	// toolsTokens is the hidden system prompt a family adds when a request
	// defines tools.
	toolsTokens int64
}

// priors, one per family:
//   - OpenAI (o200k/cl100k): tiktoken's o200k gives 3.5 bytes a token on Go
//     source and ~4.2 on English; the prior is 3.2. An image costs at most
//     1,105 tokens at high detail on gpt-4o and ~2,500 with the patch-based
//     models (gpt-4.1-mini, o4-mini): 2,500.
//   - Anthropic: Claude's tokenizer cuts the same text into 10–30% more
//     tokens than cl100k: 2.7. An image costs width×height/750 tokens,
//     about 1,600 at the default size limit: 2,000. Tool use adds a system
//     prompt of ~350 tokens: 500.
//   - Gemini: a 256k-entry SentencePiece vocabulary, close to o200k: 3.3. An
//     image costs 258 tokens a 768-pixel tile (1,120 at high resolution on
//     Gemini 3): 1,600.
//   - Unknown: the most conservative of them.
var priors = [...]prior{
	familyUnknown:   {bytesPerToken: 2.7, imageTokens: 2500, toolsTokens: 500},
	familyOpenAI:    {bytesPerToken: 3.2, imageTokens: 2500},
	familyAnthropic: {bytesPerToken: 2.7, imageTokens: 2000, toolsTokens: 500},
	familyGemini:    {bytesPerToken: 3.3, imageTokens: 1600},
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
