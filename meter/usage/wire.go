package usage

import (
	"encoding/json"
	"errors"
	"math"
)

// envelope is the union of the fields any supported format keeps its usage,
// identity and end-of-response marks in. Decoding into it skips everything
// else, such as the generated text.
type envelope struct {
	Type   string     `json:"type"`
	Object string     `json:"object"`
	ID     string     `json:"id"`
	Model  string     `json:"model"`
	Usage  *wireUsage `json:"usage"`

	// OpenAI Chat: a finish_reason marks the last content chunk.
	Choices []struct {
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`

	// Anthropic message_start and Responses stream events wrap the message.
	Message  *wrapped `json:"message"`
	Response *wrapped `json:"response"`

	// Gemini; Code Assist wraps it in Response and names it by TraceID.
	geminiFields
	TraceID string `json:"traceId"`
}

// wrapped is a message or response object nested in a stream event: an
// Anthropic message, a Responses response, or the Gemini response Code
// Assist wraps.
type wrapped struct {
	ID    string     `json:"id"`
	Model string     `json:"model"`
	Usage *wireUsage `json:"usage"`
	geminiFields
}

// geminiFields are what a Gemini response keeps its usage, identity and
// end in.
type geminiFields struct {
	UsageMetadata *geminiUsage `json:"usageMetadata"`
	Candidates    []struct {
		FinishReason string `json:"finishReason"`
	} `json:"candidates"`
	PromptFeedback *struct {
		BlockReason string `json:"blockReason"`
	} `json:"promptFeedback"`
	ResponseID   string `json:"responseId"`
	ModelVersion string `json:"modelVersion"`
}

// telling reports whether g holds any Gemini field.
func (g *geminiFields) telling() bool {
	return g.UsageMetadata != nil || len(g.Candidates) > 0 || g.PromptFeedback != nil || g.ModelVersion != "" || g.ResponseID != ""
}

// gemini is the Gemini response an event carries: the event itself, or
// the one Code Assist wraps in "response" (then named by its traceId
// when it has no responseId of its own).
func (e *envelope) gemini() (g *geminiFields, id string) {
	if !e.geminiFields.telling() && e.Response != nil && e.Response.telling() {
		g = &e.Response.geminiFields
	} else {
		g = &e.geminiFields
	}
	if id = g.ResponseID; id == "" {
		id = e.TraceID
	}
	return g, id
}

// wireUsage is the union of the OpenAI and Anthropic usage objects. Counts
// are pointers because Anthropic's message_delta overrides only the fields
// it carries.
type wireUsage struct {
	PromptTokens            *int64   `json:"prompt_tokens"`
	CompletionTokens        *int64   `json:"completion_tokens"`
	PromptTokensDetails     *details `json:"prompt_tokens_details"`
	CompletionTokensDetails *details `json:"completion_tokens_details"`

	InputTokens         *int64   `json:"input_tokens"`
	OutputTokens        *int64   `json:"output_tokens"`
	TotalTokens         *int64   `json:"total_tokens"`
	InputTokensDetails  *details `json:"input_tokens_details"`
	OutputTokensDetails *details `json:"output_tokens_details"`

	CacheReadInputTokens     *int64      `json:"cache_read_input_tokens"`
	CacheCreationInputTokens *int64      `json:"cache_creation_input_tokens"`
	Iterations               []wireUsage `json:"iterations"`
}

// details is OpenAI's *_tokens_details breakdown.
type details struct {
	CachedTokens    *int64 `json:"cached_tokens"`
	ReasoningTokens *int64 `json:"reasoning_tokens"`
}

// geminiUsage is Gemini's usageMetadata.
type geminiUsage struct {
	PromptTokenCount        *int64 `json:"promptTokenCount"`
	CachedContentTokenCount *int64 `json:"cachedContentTokenCount"`
	CandidatesTokenCount    *int64 `json:"candidatesTokenCount"`
	ThoughtsTokenCount      *int64 `json:"thoughtsTokenCount"`
	ToolUsePromptTokenCount *int64 `json:"toolUsePromptTokenCount"`
}

// decode fills e from one event's JSON. A field of the wrong type is skipped
// and the rest kept, since one odd field must not hide the usage; only
// malformed JSON is refused.
func decode(data []byte, e *envelope) bool {
	err := json.Unmarshal(data, e)
	var typeErr *json.UnmarshalTypeError
	return err == nil || errors.As(err, &typeErr)
}

// count reads an optional count; absent and negative counts are 0, so a
// report is never negative whatever the provider sent.
func count(p *int64) int64 {
	if p == nil || *p < 0 {
		return 0
	}
	return *p
}

// cached and reasoning read the optional detail counts.
func (d *details) cached() int64 {
	if d == nil {
		return 0
	}
	return count(d.CachedTokens)
}

func (d *details) reasoning() int64 {
	if d == nil {
		return 0
	}
	return count(d.ReasoningTokens)
}

// add and sub are saturating on non-negative counts: sums stop at the
// largest int64 and differences at 0.
func add(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

func sub(a, b int64) int64 {
	if b > a {
		return 0
	}
	return a - b
}
