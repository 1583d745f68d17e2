package usage

import "bytes"

// sseFrames reads server-sent events: lines ending in LF, CRLF or CR;
// "data:" lines joined with "\n"; a blank line dispatching the event;
// comments and other fields ignored. Only the current line and the current
// event's data are kept.
type sseFrames struct {
	line      []byte
	data      []byte
	name      []byte
	hasData   bool
	skipLine  bool // the current line passed the size cap
	skipEvent bool // a line of the current event was lost
	afterCR   bool // the last byte was CR; a following LF belongs to it
}

// maxName bounds the kept event name; real ones are a few dozen bytes.
const maxName = 256

// write consumes p, dispatching every event it completes.
func (s *sseFrames) write(p []byte, max int, emit func(data, name []byte)) {
	for len(p) > 0 {
		if s.afterCR {
			s.afterCR = false
			if p[0] == '\n' {
				p = p[1:]
				continue
			}
		}
		i := bytes.IndexAny(p, "\r\n")
		if i < 0 {
			s.addLine(p, max)
			return
		}
		s.afterCR = p[i] == '\r'
		if len(s.line) == 0 && !s.skipLine {
			s.handle(p[:i], max, emit) // the whole line is in p: no copy
		} else {
			s.addLine(p[:i], max)
			s.endLine(max, emit)
		}
		p = p[i+1:]
	}
}

// addLine appends to the current line within the cap.
func (s *sseFrames) addLine(b []byte, max int) {
	if s.skipLine {
		return
	}
	var ok bool
	if s.line, ok = grow(s.line, b, max); !ok {
		s.skipLine = true
	}
}

// endLine handles the buffered line; a line lost to the cap spoils its event.
func (s *sseFrames) endLine(max int, emit func(data, name []byte)) {
	if s.skipLine {
		s.skipLine, s.skipEvent = false, true
	} else {
		s.handle(s.line, max, emit)
	}
	s.line = release(s.line)
}

// handle interprets one complete line.
func (s *sseFrames) handle(line []byte, max int, emit func(data, name []byte)) {
	if len(line) == 0 {
		s.dispatch(emit)
		return
	}
	field, value := fieldValue(line)
	switch string(field) {
	case "data":
		s.addData(value, max)
	case "event":
		s.name = append(s.name[:0], value[:min(len(value), maxName)]...)
	}
}

// fieldValue splits "field: value"; a line starting with ':' is a comment
// and has an empty field name.
func fieldValue(line []byte) (field, value []byte) {
	i := bytes.IndexByte(line, ':')
	if i < 0 {
		return line, nil
	}
	field, value = line[:i], line[i+1:]
	if len(value) > 0 && value[0] == ' ' {
		value = value[1:]
	}
	return field, value
}

// addData appends one data line to the event within the cap.
func (s *sseFrames) addData(value []byte, max int) {
	if s.skipEvent {
		return
	}
	sep := 0
	if s.hasData {
		sep = 1
	}
	if len(s.data)+sep+len(value) > max {
		s.data, s.skipEvent = release(s.data), true
		return
	}
	if s.hasData {
		s.data = append(s.data, '\n')
	}
	s.data, s.hasData = append(s.data, value...), true
}

// dispatch emits the event a blank line ended and starts the next one.
func (s *sseFrames) dispatch(emit func(data, name []byte)) {
	if s.hasData && !s.skipEvent {
		emit(s.data, s.name)
	}
	s.data = release(s.data)
	s.name = s.name[:0]
	s.hasData, s.skipEvent = false, false
}

// pending is the event a blank line would dispatch now, counting an
// unterminated last data line: a stream cut just before its final blank
// line still yields its last event.
func (s *sseFrames) pending() (data, name []byte) {
	if s.skipEvent {
		return nil, nil
	}
	if field, value := fieldValue(s.line); !s.skipLine && string(field) == "data" {
		data = bytes.Clone(s.data)
		if s.hasData {
			data = append(data, '\n')
		}
		return append(data, value...), s.name
	}
	if !s.hasData {
		return nil, nil
	}
	return s.data, s.name
}
