package budget

import (
	"path"
	"strings"
)

// This file is the one table of what bottlecap knows about the provider
// APIs: their default budget provider names and upstream hosts (the
// settings defaults), the base URLs and endpoints the meter routes and
// meters, and the error shapes it refuses requests in. The meter and the
// CLI derive from it; integrations/mitmproxy/providers.json is it written
// out (TestProviderTableFixture), which the Python addon's tests hold the
// addon's own copies to. A new provider API is one more row here.
//
// It is data only: no I/O, no parsing of URLs.

// ProviderAPI is one provider API family as the meter meets it on the wire.
type ProviderAPI struct {
	// Family names the API in the meter's flags (--upstream-FAMILY,
	// --upstream FAMILY=URL): anthropic, openai, chatgpt, gemini or
	// codeassist.
	Family string `json:"family"`
	// Name is how people write the family (flag help).
	Name string `json:"name"`
	// Provider is the budget provider its usage counts against unless the
	// operator renames it; --upstream accepts it in place of Family, for
	// the first API of the provider (codex names openai, not chatgpt).
	// Several APIs may share one provider: one agent reaching two
	// upstreams spends one budget.
	Provider string `json:"provider"`
	// Hosts are the upstream hosts attributed to Provider by default.
	Hosts []string `json:"hosts"`
	// BaseURL is the default upstream the meter forwards to.
	BaseURL string `json:"base_url"`
	// Endpoints are the generation calls that cost tokens: a POST to one,
	// under any spelling an upstream may fold to it (meter/paths.go), is
	// gated, metered and forwarded as the table spells it.
	Endpoints []Endpoint `json:"endpoints"`
	// Unmetered are the calls of this API that spend tokens the meter
	// cannot count (batches, embeddings, images, audio, agents run by the
	// provider): a request to one that may carry a prompt (anything but a
	// bodiless GET, HEAD, OPTIONS or DELETE) is refused before it reaches
	// the upstream, unless the operator lets it through by name
	// (--pass-unmetered).
	// Every other path is forwarded as it is: a list of the known spending
	// calls, not of the harmless ones, so model lists, token counts, files
	// and the agents' own telemetry and sign-in paths keep working.
	Unmetered []Unmetered `json:"unmetered"`
	// ShapeParams and ShapeHeaders are the query parameters and request
	// headers with which a client may have this API answer a generation
	// call in a form the meter cannot read its usage from: another
	// encoding (Google's alt=proto) or with fields filtered out (fields,
	// X-Goog-FieldMask, which could drop the usage). A metered call that
	// carries such a header, or such a parameter with any value but json
	// or sse, is refused.
	ShapeParams  []string `json:"shape_params,omitempty"`
	ShapeHeaders []string `json:"shape_headers,omitempty"`
	// Prefixes are further paths sent to this API, unmetered.
	Prefixes []string `json:"prefixes,omitempty"`
	// Headers are request headers naming this API when the path does not.
	Headers []string `json:"headers,omitempty"`
	// Fallback marks the API that requests nothing else names go to.
	Fallback bool `json:"fallback,omitempty"`
	// Denial is the error object the API's SDKs parse, so an agent shows
	// the meter's message instead of a generic failure.
	Denial ErrorShape `json:"denial"`
}

// Endpoint is one metered generation call.
type Endpoint struct {
	// Format is the usage wire format of its responses, as meter/usage
	// names it: anthropic, openai-chat, openai-responses or gemini.
	Format string `json:"format"`
	// Path is the meter's path: the whole path, or, ending in "/", a
	// prefix whose rest must end in Suffix (a model name sits between);
	// "/" alone takes any path that ends in Suffix (Gemini's methods, on
	// whatever version and model collection).
	Path string `json:"path"`
	// Suffix is how the call is recognised behind any host and base path
	// (the mitmproxy addon sees chatgpt.com/backend-api/codex/responses).
	Suffix string `json:"suffix"`
	// WebSocket marks a call the meter also meters over a WebSocket
	// (a GET with Upgrade: websocket).
	WebSocket bool `json:"websocket,omitempty"`
}

// Matches reports whether the cleaned request path p calls this endpoint,
// in any ASCII letter case: an upstream that routes case-insensitively
// must not be a way around the meter.
func (e Endpoint) Matches(p string) bool {
	if !e.isPrefix() {
		return equalFoldASCII(p, e.Path)
	}
	if len(p) < len(e.Path)+len(e.Suffix) || !equalFoldASCII(p[:len(e.Path)], e.Path) {
		return false
	}
	return equalFoldASCII(p[len(p)-len(e.Suffix):], e.Suffix)
}

// Canonical is the path p, which this endpoint Matches, spelled as the
// table spells the endpoint: the meter forwards it so, so that what the
// upstream is asked is what the meter metered. The model between a
// prefix and its suffix is kept as sent.
func (e Endpoint) Canonical(p string) string {
	if !e.isPrefix() {
		return e.Path
	}
	return e.Path + p[len(e.Path):len(p)-len(e.Suffix)] + e.Suffix
}

// Specificity orders the endpoints a path matches: a whole path before
// any prefix, a longer prefix before a shorter one (Gemini Code Assist's
// /v1internal:generateContent before Gemini's any-path methods).
func (e Endpoint) Specificity() int {
	if !e.isPrefix() {
		return 1 << 20
	}
	return len(e.Path)
}

func (e Endpoint) isPrefix() bool { return strings.HasSuffix(e.Path, "/") }

// equalFoldASCII is strings.EqualFold for ASCII letters only: a byte
// outside ASCII matches only itself, so lengths and offsets agree.
func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lowerASCII(a[i]) != lowerASCII(b[i]) {
			return false
		}
	}
	return true
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// Unmetered is a call that spends tokens bottlecap does not meter.
type Unmetered struct {
	// Pattern is its path, as path.Match reads it: a "*" stands for one
	// path segment or part of one (an id, an API version, or a model
	// before a Gemini method: /*/models/*:embedContent). It is also the
	// name an operator passes it by.
	Pattern string `json:"pattern"`
	// What names the call for the refusal's message.
	What string `json:"what"`
}

// Matches reports whether the cleaned request path p is this call's, in
// any letter case (an upstream that routes case-insensitively must not
// be a way around the refusal).
func (u Unmetered) Matches(p string) bool {
	ok, err := path.Match(strings.ToLower(u.Pattern), strings.ToLower(p))
	return ok && err == nil
}

// UnmeteredCall is the call of api whose pattern matches the request
// path p, or nil.
func UnmeteredCall(api ProviderAPI, p string) *Unmetered {
	for i := range api.Unmetered {
		if api.Unmetered[i].Matches(p) {
			return &api.Unmetered[i]
		}
	}
	return nil
}

// ErrorShape is a family's JSON error object. Envelope is the object with
// placeholders where the refusal fills in: "$message", "$type" and "$code"
// (strings, from the refusal's ErrorKind) and "$status" (the HTTP status,
// a number). The envelope does not depend on the status; only the kind
// does.
type ErrorShape struct {
	Envelope map[string]any       `json:"envelope"`
	Kinds    map[string]ErrorKind `json:"kinds"`
}

// ErrorKind is what fills "$type" and "$code" for one refusal.
type ErrorKind struct {
	Type string `json:"type"`
	Code string `json:"code,omitempty"`
}

// The refusals the meter and the addon answer in a provider's shape, by
// name (the keys of ErrorShape.Kinds).
const (
	// RefuseDenied: the budget does not allow the call.
	RefuseDenied = "denied"
	// RefuseUnavailable: the daemon cannot be asked, or reports back up
	// (fail-closed).
	RefuseUnavailable = "daemon_unavailable"
	// RefuseUnreachable: the meter could not reach the upstream.
	RefuseUnreachable = "upstream_unreachable"
	// RefuseNotMetered: the addon cannot read the upstream's answer (an
	// encoding it cannot undo), so it withholds it.
	RefuseNotMetered = "upstream_not_metered"
	// RefuseUpgrade: the meter or the addon refuses a WebSocket it cannot
	// meter (426), so the client falls back to HTTP.
	RefuseUpgrade = "upgrade_refused"
	// RefuseUnmetered: the call spends tokens bottlecap does not meter
	// (ProviderAPI.Unmetered), so it is refused (403: the SDKs raise it
	// as a permission error and do not retry it).
	RefuseUnmetered = "endpoint_not_metered"
)

// Refusal is one refusal and the HTTP status it is answered with.
type Refusal struct {
	Name   string `json:"name"`
	Status int    `json:"status"`
}

// Refusals are the refusals with their statuses.
func Refusals() []Refusal {
	return []Refusal{
		{RefuseDenied, 429},
		{RefuseUnavailable, 503},
		{RefuseUnreachable, 502},
		{RefuseNotMetered, 502},
		{RefuseUpgrade, 426},
		{RefuseUnmetered, 403},
	}
}

// ProviderAPIs is the table: every provider API bottlecap meters, in the
// order flags and help list them. Each call returns a fresh copy.
func ProviderAPIs() []ProviderAPI {
	return []ProviderAPI{
		{
			Family: "anthropic", Name: "Anthropic", Provider: "claude",
			Hosts:   []string{"api.anthropic.com"},
			BaseURL: "https://api.anthropic.com",
			Endpoints: []Endpoint{
				{Format: "anthropic", Path: "/v1/messages", Suffix: "/messages"},
			},
			// Claude Code's own calls (/v1/messages/count_tokens, /v1/models,
			// /api/oauth/..., /api/event_logging/batch) are not in it. The
			// Managed Agents sessions (/v1/sessions) are not either: Claude
			// Code's Remote Control, which runs the agent here and is
			// metered, uses the same path.
			Unmetered: []Unmetered{
				{"/v1/messages/batches", "Message Batches"},
				{"/v1/complete", "legacy Text Completions (its responses carry no usage)"},
				{"/v1/deployments/*/run", "Managed Agents deployment run"},
				{"/v1/dreams", "Managed Agents dreams"},
			},
			Headers: []string{"Anthropic-Version", "X-Api-Key"},
			Denial: ErrorShape{
				Envelope: map[string]any{"type": "error", "error": map[string]any{"type": "$type", "message": "$message"}},
				Kinds: map[string]ErrorKind{
					RefuseDenied:      {Type: "rate_limit_error"},
					RefuseUnavailable: {Type: "overloaded_error"},
					RefuseUnreachable: {Type: "api_error"},
					RefuseNotMetered:  {Type: "api_error"},
					RefuseUpgrade:     {Type: "invalid_request_error"},
					RefuseUnmetered:   {Type: "permission_error"},
				},
			},
		},
		{
			Family: "openai", Name: "OpenAI", Provider: "codex",
			Hosts:   []string{"api.openai.com"},
			BaseURL: "https://api.openai.com",
			Endpoints: []Endpoint{
				{Format: "openai-chat", Path: "/v1/chat/completions", Suffix: "/chat/completions"},
				{Format: "openai-responses", Path: "/v1/responses", Suffix: "/responses", WebSocket: true},
				// Remote compaction (Codex's, the SDK's Responses.Compact):
				// one JSON object, "response.compaction", with Responses usage.
				{Format: "openai-responses", Path: "/v1/responses/compact", Suffix: "/responses/compact"},
				// The legacy Completions API answers in Chat's usage shape
				// ("text_completion", prompt/completion tokens).
				{Format: "openai-chat", Path: "/v1/completions", Suffix: "/completions"},
			},
			Unmetered: []Unmetered{
				{"/v1/batches", "Batch API"},
				{"/v1/embeddings", "Embeddings"},
				{"/v1/audio/speech", "Audio speech"},
				{"/v1/audio/transcriptions", "Audio transcriptions"},
				{"/v1/audio/translations", "Audio translations"},
				{"/v1/images/generations", "Image generation"},
				{"/v1/images/edits", "Image edits"},
				{"/v1/images/variations", "Image variations"},
				{"/v1/videos", "Video generation"},
				{"/v1/videos/edits", "Video edits"},
				{"/v1/videos/extensions", "Video extensions"},
				{"/v1/videos/*/remix", "Video remix"},
				{"/v1/realtime/sessions", "Realtime sessions"},
				{"/v1/realtime/transcription_sessions", "Realtime transcription sessions"},
				{"/v1/realtime/client_secrets", "Realtime client secrets"},
				{"/v1/realtime/translations/client_secrets", "Realtime translation client secrets"},
				{"/v1/realtime/calls", "Realtime calls (WebRTC)"},
				{"/v1/live/sessions", "Live sessions (WebRTC)"},
				{"/v1/threads/runs", "Assistants runs"},
				{"/v1/threads/*/runs", "Assistants runs"},
				{"/v1/threads/*/runs/*/submit_tool_outputs", "Assistants runs"},
				{"/v1/fine_tuning/jobs", "Fine-tuning jobs"},
				{"/v1/fine_tuning/jobs/*/resume", "Fine-tuning jobs"},
				{"/v1/fine_tuning/alpha/graders/run", "Fine-tuning graders"},
				{"/v1/agents/sessions", "Agents sessions"},
				{"/v1/agents/sessions/*/events", "Agents session events"},
				{"/v1/agents/automations", "Agents automations"},
				{"/v1/agents/automations/*/invocations", "Agents automation invocations"},
				{"/v1/agents/automations/*/resume", "Agents automations"},
				{"/v1/chatkit/sessions", "ChatKit sessions"},
				{"/v1/decisions", "Decisions"},
				// Codex's own calls besides its Responses and compaction.
				{"/v1/alpha/search", "Codex web search"},
				{"/v1/memories/trace_summarize", "Codex memory summaries"},
			},
			Fallback: true,
			Denial:   openAIDenial(ErrorKind{Type: "insufficient_quota", Code: "insufficient_quota"}),
		},
		{
			// Codex signed in with ChatGPT posts the Responses format to
			// its ChatGPT backend, not to the API: the same provider, a
			// second upstream (the meter's pools are per provider).
			Family: "chatgpt", Name: "ChatGPT's Codex backend", Provider: "codex",
			Hosts:   []string{"chatgpt.com"},
			BaseURL: "https://chatgpt.com",
			Endpoints: []Endpoint{
				{Format: "openai-responses", Path: "/backend-api/codex/responses", Suffix: "/responses", WebSocket: true},
				{Format: "openai-responses", Path: "/backend-api/codex/responses/compact", Suffix: "/responses/compact"},
			},
			// The calls Codex makes under the same base URL that spend the
			// plan's usage, its cloud tasks, and ChatGPT's own conversations.
			Unmetered: []Unmetered{
				{"/backend-api/codex/alpha/search", "Codex web search"},
				{"/backend-api/codex/memories/trace_summarize", "Codex memory summaries"},
				{"/backend-api/codex/images/generations", "Codex image generation"},
				{"/backend-api/codex/images/edits", "Codex image edits"},
				{"/backend-api/codex/realtime/calls", "Codex realtime calls"},
				{"/backend-api/wham/tasks", "Codex cloud tasks"},
				{"/backend-api/conversation", "ChatGPT conversations"},
				{"/backend-api/f/conversation", "ChatGPT conversations"},
			},
			// Codex sends everything else of its provider (models, usage)
			// under the same base URL; it must reach ChatGPT, not the
			// fallback API.
			Prefixes: []string{"/backend-api/"},
			// Codex reads a 429's error.type: usage_limit_reached is what
			// this backend sends when a plan's limit is spent, and the one
			// Codex shows as "You've hit your usage limit" and does not
			// retry (any other 429 shows only "exceeded retry limit, last
			// status: 429"). A cut stream's response.failed is read by its
			// code: insufficient_quota, as for the API.
			Denial: openAIDenial(ErrorKind{Type: "usage_limit_reached", Code: "insufficient_quota"}),
		},
		{
			Family: "gemini", Name: "Gemini", Provider: "gemini",
			Hosts:   []string{"generativelanguage.googleapis.com"},
			BaseURL: "https://generativelanguage.googleapis.com",
			Endpoints: []Endpoint{
				// Any path that ends in the method, so that every form the
				// API takes is metered: /v1beta/models/M, /v1/models/M,
				// /v1beta/tunedModels/M, /v1beta/dynamic/M.
				{Format: "gemini", Path: "/", Suffix: ":generateContent"},
				{Format: "gemini", Path: "/", Suffix: ":streamGenerateContent"},
				// The OpenAI compatibility layer (base URL .../v1beta/openai/)
				// and the same call in the API's own spelling.
				{Format: "openai-chat", Path: "/", Suffix: "/openai/chat/completions"},
				{Format: "openai-chat", Path: "/", Suffix: ":chatCompletions"},
			},
			// A "*" stands for the API version (v1, v1beta, v1alpha) too.
			Unmetered: []Unmetered{
				{"/*/models/*:batchGenerateContent", "Batch Mode"},
				{"/*/models/*:embedContent", "Embeddings"},
				{"/*/models/*:batchEmbedContents", "Embeddings"},
				{"/*/models/*:asyncBatchEmbedContent", "Embeddings batches"},
				{"/*/models/*:predict", "Imagen and other predictions"},
				{"/*/models/*:predictLongRunning", "Veo and other long-running predictions"},
				{"/*/models/*:generateAnswer", "Attributed question answering"},
				// Its usage has a shape of its own, not metered yet.
				{"/*/interactions", "Interactions API"},
				{"/*/cachedContents", "context caching (bills the cached tokens)"},
				{"/*/openai/embeddings", "OpenAI-compatible embeddings"},
				{"/*/openai/images/generations", "OpenAI-compatible image generation"},
				{"/*/openai/batches", "OpenAI-compatible batches"},
				// gRPC (also over HTTP/1.1 through a proxy), whose answers
				// are protocol buffers.
				{"/google.ai.generativelanguage.*/*", "gRPC methods"},
			},
			ShapeParams:  googleShapeParams(),
			ShapeHeaders: googleShapeHeaders(),
			Prefixes:     []string{"/v1beta/", "/v1alpha/"},
			// The google-genai SDKs send the API key in it; a path shared
			// with other APIs (/v1/models) then still reaches Gemini.
			Headers: []string{"X-Goog-Api-Key"},
			Denial:  googleDenial(),
		},
		{
			// Gemini CLI signed in with Google posts to Code Assist, not to
			// the Gemini API: generateContent with the request wrapped
			// ({"model", "project", "request": {...}}) and each answer too
			// ({"response": {...}, "traceId"}), whose usageMetadata the
			// Gemini parser reads inside "response". The same provider, a
			// second upstream, as for Codex and ChatGPT. Gemini CLI's
			// CODE_ASSIST_ENDPOINT points it at the meter.
			Family: "codeassist", Name: "Gemini Code Assist", Provider: "gemini",
			Hosts:   []string{"cloudcode-pa.googleapis.com"},
			BaseURL: "https://cloudcode-pa.googleapis.com",
			Endpoints: []Endpoint{
				{Format: "gemini", Path: "/v1internal:generateContent", Suffix: ":generateContent"},
				{Format: "gemini", Path: "/v1internal:streamGenerateContent", Suffix: ":streamGenerateContent"},
			},
			// What the IDE plugins and Antigravity call on the same API, on
			// the same quota; Gemini CLI calls none of them.
			Unmetered: []Unmetered{
				{"/v1internal:completeCode", "Code Assist code completion"},
				{"/v1internal:generateCode", "Code Assist code generation"},
				{"/v1internal:transformCode", "Code Assist code transformation"},
				{"/v1internal:generateChat", "Code Assist chat"},
				{"/v1internal:streamGenerateChat", "Code Assist chat"},
				{"/v1internal:internalAtomicAgenticChat", "Code Assist agent chat"},
				{"/v1internal:tabChat", "Code Assist chat"},
				{"/google.internal.cloud.code.*/*", "Code Assist gRPC methods"},
			},
			ShapeParams:  googleShapeParams(),
			ShapeHeaders: googleShapeHeaders(),
			// Its other calls (loadCodeAssist, onboardUser, countTokens,
			// retrieveUserQuota, listExperiments, recordCodeAssistMetrics,
			// operations) go to Code Assist too.
			Prefixes: []string{"/v1internal:", "/v1internal/"},
			Denial:   googleDenial(),
		},
	}
}

// googleShapeParams and googleShapeHeaders are Google's system
// parameters that change a response's encoding or fields
// (cloud.google.com/apis/docs/system-parameters).
func googleShapeParams() []string  { return []string{"alt", "$alt", "fields", "$fields"} }
func googleShapeHeaders() []string { return []string{"X-Goog-FieldMask"} }

// googleDenial is Google's error object, which the Gemini API and Code
// Assist answer in and the google-genai SDKs parse.
func googleDenial() ErrorShape {
	return ErrorShape{
		Envelope: map[string]any{"error": map[string]any{"code": "$status", "message": "$message", "status": "$type"}},
		Kinds: map[string]ErrorKind{
			RefuseDenied:      {Type: "RESOURCE_EXHAUSTED"},
			RefuseUnavailable: {Type: "UNAVAILABLE"},
			RefuseUnreachable: {Type: "UNAVAILABLE"},
			RefuseNotMetered:  {Type: "UNAVAILABLE"},
			RefuseUpgrade:     {Type: "FAILED_PRECONDITION"},
			RefuseUnmetered:   {Type: "PERMISSION_DENIED"},
		},
	}
}

// openAIDenial is the OpenAI error object, with denied as the kind of a
// budget denial (the other refusals are the same for every OpenAI-shaped
// API).
func openAIDenial(denied ErrorKind) ErrorShape {
	return ErrorShape{
		Envelope: map[string]any{"error": map[string]any{"message": "$message", "type": "$type", "code": "$code", "param": nil}},
		Kinds: map[string]ErrorKind{
			RefuseDenied:      denied,
			RefuseUnavailable: {Type: "server_error", Code: "budget_daemon_unavailable"},
			RefuseUnreachable: {Type: "server_error", Code: "upstream_unreachable"},
			RefuseNotMetered:  {Type: "server_error", Code: "upstream_not_metered"},
			RefuseUpgrade:     {Type: "invalid_request_error", Code: "websocket_not_metered"},
			RefuseUnmetered:   {Type: "invalid_request_error", Code: "endpoint_not_metered"},
		},
	}
}

// DefaultProviders are the built-in upstream hosts of each provider.
func DefaultProviders() map[string][]string {
	out := map[string][]string{}
	for _, api := range ProviderAPIs() {
		out[api.Provider] = append(out[api.Provider], api.Hosts...)
	}
	return out
}
