// Package usage reads the token usage out of LLM provider responses as they
// stream past, so that the egress meter can report what every response cost
// without buffering it and without ever breaking it.
//
// A [Parser] is an [io.Writer]: the proxy tees the upstream body into it and
// asks for a [Result] whenever it needs one — at the end of the body, or when
// the client went away halfway. It understands OpenAI Chat Completions,
// OpenAI Responses, Anthropic Messages and Gemini generateContent /
// streamGenerateContent, each as a whole JSON body, as server-sent events
// (LF or CRLF) or as one JSON event per line (including Gemini's JSON-array
// stream), and normalises the counts as SPEC section 4 prescribes into a
// [budget.Usage]. It also counts the bytes of generated content that pass
// (text, tool-call arguments, thinking), so that a response cut before its
// final usage can be billed no less than what passed (meter/estimate turns
// them into tokens).
//
// Memory is bounded: a parser keeps only the event it is reading, and an
// event larger than [MaxEventSize] is skipped rather than buffered (so a
// whole JSON body beyond it, say one inlining large images, yields no usage). Provider
// data it cannot use is ignored, never reported as an error, so a proxy can
// keep streaming whatever arrives. [ParseAll] is the strict form for a body
// already in hand: it fails when it found no usage.
package usage
