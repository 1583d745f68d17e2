package usage

import (
	"fmt"
	"strings"

	"github.com/bot-bottle/bottlecap/budget"
)

// Format names a provider wire format. The proxy picks one per route, or
// leaves it to Auto when it cannot tell.
type Format string

// The formats a Parser understands. Their string values are the names used in
// flags and settings.
const (
	// Auto detects the format from the request path, else from the payload.
	Auto Format = "auto"
	// OpenAIChat is OpenAI Chat Completions (and the legacy Completions API).
	OpenAIChat Format = "openai-chat"
	// OpenAIResponses is the OpenAI Responses API (and its compaction,
	// whose "response.compaction" object carries the same usage).
	OpenAIResponses Format = "openai-responses"
	// Anthropic is the Anthropic Messages API.
	Anthropic Format = "anthropic"
	// Gemini is Gemini generateContent and streamGenerateContent.
	Gemini Format = "gemini"
)

// ParseFormat turns a flag or setting value into a Format, so a typo is
// caught at start-up rather than as silently missing usage. The empty string
// means Auto.
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(strings.TrimSpace(s))); f {
	case "":
		return Auto, nil
	case Auto, OpenAIChat, OpenAIResponses, Anthropic, Gemini:
		return f, nil
	}
	return "", fmt.Errorf("%w: unknown usage format %q (want auto, openai-chat, openai-responses, anthropic or gemini)",
		budget.ErrInvalid, s)
}

// FormatForPath is the format a request path implies, or Auto when the path
// says nothing; the proxy can use it to pick a format once per request.
func FormatForPath(path string) Format {
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	switch {
	case strings.Contains(path, ":generateContent"), strings.Contains(path, ":streamGenerateContent"):
		return Gemini
	case strings.HasSuffix(path, "/completions"), strings.HasSuffix(path, ":chatCompletions"):
		return OpenAIChat
	case strings.Contains(path, "/responses"):
		return OpenAIResponses
	case strings.HasSuffix(path, "/messages"):
		return Anthropic
	}
	return Auto
}

// known reports whether f is one of the concrete formats.
func (f Format) known() bool {
	switch f {
	case OpenAIChat, OpenAIResponses, Anthropic, Gemini:
		return true
	}
	return false
}

// detect guesses the format of one decoded event, or returns Auto when the
// event carries no telling field.
func detect(e *envelope) Format {
	typ := e.Type
	switch {
	case e.telling() || e.Response != nil && e.Response.telling():
		return Gemini
	case strings.HasPrefix(typ, "response.") || e.Object == "response" || e.Object == "response.compaction":
		return OpenAIResponses
	case strings.HasPrefix(e.Object, "chat.completion") || e.Object == "text_completion":
		return OpenAIChat
	case typ == "message" || strings.HasPrefix(typ, "message_") || strings.HasPrefix(typ, "content_block_"):
		return Anthropic
	}
	return detectUsage(e.Usage)
}

// detectUsage tells the formats apart by the shape of a bare usage object:
// Chat counts prompt/completion tokens, Responses always adds total_tokens,
// Anthropic has neither.
func detectUsage(u *wireUsage) Format {
	switch {
	case u == nil:
		return Auto
	case u.PromptTokens != nil || u.CompletionTokens != nil:
		return OpenAIChat
	case u.InputTokens != nil && (u.TotalTokens != nil || u.InputTokensDetails != nil):
		return OpenAIResponses
	case u.InputTokens != nil || u.CacheReadInputTokens != nil || u.CacheCreationInputTokens != nil:
		return Anthropic
	}
	return Auto
}
