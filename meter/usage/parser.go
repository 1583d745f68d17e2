package usage

import (
	"fmt"
	"io"
	"sync"

	"github.com/bot-bottle/bottlecap/budget"
)

// Result is what a parser has learned about one response so far: enough
// for the meter to send a report at any moment, marked incomplete when the
// final usage event has not arrived.
type Result struct {
	// Format is the format parsed, or Auto while it is still unknown.
	Format Format
	// Usage is the normalised usage seen so far (SPEC section 4).
	Usage budget.Usage
	// Complete is true once the final usage event arrived: the usage chunk
	// or [DONE] after usage (Chat), response.completed/.incomplete/.failed
	// (Responses), message_delta (Anthropic), a finished candidate (Gemini),
	// or a whole JSON body carrying usage.
	Complete bool
	// Found is true once any usage was seen.
	Found bool
	// HasInput is true once the provider's input counts arrived: Anthropic's
	// message_start, Gemini's first usageMetadata, the final usage of Chat
	// and Responses. Until then Usage holds no input the meter may trust.
	HasInput bool
	// HasOutput is true once an output count covering the stream so far
	// arrived: the final usage event, or any of Gemini's cumulative ones.
	// Anthropic's message_start carries only a placeholder.
	HasOutput bool
	// DeltaBytes is the generated content that passed — text, tool-call
	// arguments, thinking, in a stream's deltas or a whole body — in bytes,
	// from which the meter estimates the output of a response that ended
	// before its final usage (meter/estimate).
	DeltaBytes int64
	// Model is the model the provider says answered.
	Model string
	// ID is the provider's response id, the natural idempotency key.
	ID string
}

// Parser extracts usage from a response body as it streams past. It is an
// io.Writer so a proxy can tee the body into it; Write never fails, since
// bad provider data must not break the stream. Write and Result may be
// called from different goroutines.
type Parser struct {
	mu sync.Mutex
	fr framer
	st state
}

// NewParser returns a parser for one response body. With Auto (or any value
// that is not a concrete format), pathHint — the request path, may be empty —
// picks the format, else the first telling event of the payload does.
func NewParser(f Format, pathHint string) *Parser {
	p := &Parser{}
	p.st.format = f
	if !f.known() {
		p.st.format = FormatForPath(pathHint)
	}
	p.fr.max = MaxEventSize
	p.fr.emit = p.st.feed
	return p
}

// Write feeds the next bytes of the body, in any chunking. It always
// consumes all of b and returns a nil error.
func (p *Parser) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fr.write(b)
	return len(b), nil
}

// Result reports the usage seen so far. An SSE event still waiting for its
// blank line is counted as if the stream had ended here; the parser itself
// is not changed, so more bytes may follow.
func (p *Parser) Result() Result {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.st
	if data, name := p.fr.pending(); data != nil {
		st.feed(data, name)
	}
	return st.result()
}

// DeltaBytes is Result().DeltaBytes counting only the events completed so
// far: cheap enough to call after every Write.
func (p *Parser) DeltaBytes() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.st.delta
}

// ParseAll reads a whole body and returns its usage. Unlike a Parser it is
// strict: a body without usage is an error wrapping budget.ErrInvalid, so a
// caller holding a complete body learns that nothing could be metered.
func ParseAll(f Format, pathHint string, r io.Reader) (Result, error) {
	p := NewParser(f, pathHint)
	if _, err := io.Copy(p, r); err != nil {
		return p.Result(), fmt.Errorf("read response body: %w", err)
	}
	res := p.Result()
	if !res.Found {
		return res, fmt.Errorf("%w: no usage found in response (%s)", budget.ErrInvalid, tried(f, res.Format))
	}
	return res, nil
}

// tried says which format a failed parse used, for the error message.
func tried(asked, got Format) string {
	switch {
	case asked.known():
		return "format " + string(asked)
	case got.known():
		return "format auto, detected " + string(got)
	}
	return "format auto, none detected"
}
