package usage

import (
	"bytes"

	"github.com/bot-bottle/bottlecap/budget"
)

// state is everything a parser has learned from the events so far. It holds
// no references, so Result can copy it and finish a pending event on the copy.
type state struct {
	format   Format
	usage    budget.Usage
	found    bool
	complete bool
	model    string
	id       string

	hasInput  bool
	hasOutput bool
	delta     int64 // generated content passed, in bytes (see deltaBytes)

	finished bool         // gemini: a candidate carried a finishReason
	iter     budget.Usage // anthropic: sum over usage.iterations
	hasIter  bool
}

// feed takes one event payload as the framer cut it; name is its SSE event
// name, if any.
func (s *state) feed(data, name []byte) {
	data = bytes.TrimSpace(data)
	if bytes.Equal(data, []byte("[DONE]")) {
		// Chat's clean end of stream: whatever usage came is all there is.
		if s.format == OpenAIChat && s.found {
			s.complete = true
		}
		return
	}
	if len(data) == 0 || data[0] != '{' {
		return
	}
	if s.wants(data) {
		s.readEvent(data, name)
	}
	if s.format.known() {
		s.delta = add(s.delta, deltaBytes(s.format, data, name))
	}
}

// readEvent decodes an event that may carry usage, the format or the id.
func (s *state) readEvent(data, name []byte) {
	var e envelope
	if !decode(data, &e) {
		return
	}
	if e.Type == "" && len(name) > 0 {
		e.Type = string(name) // SSE streams name the event type on their own line too
	}
	if !s.format.known() {
		if s.format = detect(&e); s.format == Auto {
			return
		}
	}
	s.apply(&e)
}

// wants reports whether an event is worth decoding: it mentions usage (or,
// for Gemini, a finish or block reason), or the parser still needs the
// format or the response id. This keeps the cost of content chunks to a
// substring search.
func (s *state) wants(data []byte) bool {
	return s.id == "" || !s.format.known() || bytes.Contains(data, []byte(`"usage`)) ||
		s.format == Gemini && bytes.Contains(data, []byte(`Reason"`))
}

// apply hands a decoded event to its format's rules.
func (s *state) apply(e *envelope) {
	switch s.format {
	case OpenAIChat:
		s.identify(e.ID, e.Model)
		s.applyChat(e)
	case OpenAIResponses:
		s.applyResponses(e)
	case Anthropic:
		s.applyAnthropic(e)
	case Gemini:
		g, id := e.gemini()
		s.identify(id, g.ModelVersion)
		s.applyGemini(g)
	}
}

// identify keeps the first non-empty response id and model: later events
// repeat them, and some (Azure's first chunk) leave them empty.
func (s *state) identify(id, model string) {
	if s.id == "" {
		s.id = id
	}
	if s.model == "" {
		s.model = model
	}
}

// result is the Result the state stands for.
func (s *state) result() Result {
	u := s.usage
	if s.hasIter {
		u = s.iter
	}
	return Result{
		Format: s.format, Usage: u, Complete: s.complete, Found: s.found,
		HasInput: s.hasInput, HasOutput: s.hasOutput, DeltaBytes: s.delta,
		Model: s.model, ID: s.id,
	}
}
