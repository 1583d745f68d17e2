package usage

import "bytes"

// MaxEventSize is the largest single event (or whole JSON body) a Parser
// holds. Usage events are small; a larger event is skipped rather than
// letting one response grow the proxy without bound.
const MaxEventSize = 16 << 20

// keepCap is the buffer capacity kept between events; a buffer grown past
// it by a large event is released, so memory returns to its resting size.
const keepCap = 64 << 10

// mode is the framing of a body, decided by its first significant byte.
type mode uint8

const (
	modeUnknown mode = iota
	modeSSE          // server-sent events
	modeJSON         // JSON values: a body, one per line, or a JSON array
)

// framer cuts a byte stream into event payloads and hands each to emit.
type framer struct {
	mode mode
	max  int
	emit func(data, name []byte)
	sse  sseFrames
	json jsonFrames
}

// write consumes p, emitting every event it completes.
func (f *framer) write(p []byte) {
	if f.mode == modeUnknown {
		p = f.decide(p)
	}
	switch f.mode {
	case modeSSE:
		f.sse.write(p, f.max, f.emit)
	case modeJSON:
		f.json.write(p, f.max, f.emit)
	}
}

// decide skips leading whitespace (and a UTF-8 byte order mark) and picks
// the framing from the first byte after it.
func (f *framer) decide(p []byte) []byte {
	for i, c := range p {
		switch c {
		case ' ', '\t', '\r', '\n', 0xEF, 0xBB, 0xBF:
			continue
		case '{', '[':
			f.mode = modeJSON
		default:
			f.mode = modeSSE
		}
		return p[i:]
	}
	return nil
}

// pending is the event the stream would complete if it ended now, or nil.
func (f *framer) pending() (data, name []byte) {
	if f.mode != modeSSE {
		return nil, nil
	}
	return f.sse.pending()
}

// capacity is the memory the framer holds on to, for tests.
func (f *framer) capacity() int {
	return cap(f.sse.line) + cap(f.sse.data) + cap(f.sse.name) + cap(f.json.obj)
}

// release empties b, dropping its array if an outsized event grew it.
func release(b []byte) []byte {
	if cap(b) > keepCap {
		return nil
	}
	return b[:0]
}

// grow appends b to buf unless that would pass max; ok is false then, and
// the returned buffer is released.
func grow(buf, b []byte, max int) (_ []byte, ok bool) {
	if len(buf)+len(b) > max {
		return release(buf[:0]), false
	}
	return append(buf, b...), true
}

// jsonFrames splits a stream of JSON values into its objects: a whole body,
// one object per line, or the objects of a top-level array. Only the object
// being read is kept.
type jsonFrames struct {
	obj    []byte
	depth  int  // nesting inside the current object; 0 between objects
	inStr  bool // inside a string
	esc    bool // after a backslash inside a string
	skip   bool // the current object passed the size cap
	lineup bool // the last byte was a newline
}

// write scans p and emits every object that closes in it.
func (j *jsonFrames) write(p []byte, max int, emit func(data, name []byte)) {
	start := -1
	if j.depth > 0 {
		start = 0
	}
	for i := 0; i < len(p); i++ {
		if j.inStr && !j.esc {
			// Inside a string only quotes, escapes and newlines matter.
			k := bytes.IndexAny(p[i:], "\"\\\n")
			if k < 0 {
				break
			}
			i += k
		}
		c := p[i]
		if c == '{' && j.lineup && j.depth > 0 {
			// A line that starts a new object while the last one is still
			// open: the last one was cut short. Drop it and resynchronise.
			j.reset()
		}
		j.lineup = c == '\n'
		if j.step(c) {
			start = i
		}
		if j.depth == 0 && start >= 0 && !j.inStr {
			j.add(p[start:i+1], max)
			j.flush(emit)
			start = -1
		}
	}
	if start >= 0 {
		j.add(p[start:], max)
	}
}

// step advances the scanner over one byte and reports whether it opened a
// top-level object.
func (j *jsonFrames) step(c byte) (opened bool) {
	switch {
	case j.esc:
		j.esc = false
	case j.inStr:
		switch c {
		case '\\':
			j.esc = true
		case '"', '\n':
			j.inStr = false
		}
	case c == '"':
		j.inStr = true
	case c == '{':
		j.depth++
		return j.depth == 1
	case c == '[' && j.depth > 0:
		j.depth++
	case (c == '}' || c == ']') && j.depth > 0:
		j.depth--
	}
	return false
}

// add appends a piece of the current object within the cap.
func (j *jsonFrames) add(b []byte, max int) {
	if j.skip {
		return
	}
	var ok bool
	if j.obj, ok = grow(j.obj, b, max); !ok {
		j.skip = true
	}
}

// flush emits the object just closed, unless it was too large.
func (j *jsonFrames) flush(emit func(data, name []byte)) {
	if !j.skip {
		emit(j.obj, nil)
	}
	j.obj, j.skip = release(j.obj), false
}

// reset abandons the current object.
func (j *jsonFrames) reset() {
	j.obj = release(j.obj)
	j.depth, j.inStr, j.esc, j.skip = 0, false, false, false
}
