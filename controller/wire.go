package controller

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
)

// decodeReport decodes one wire report. Sidecars send the same plain shape
// thousands of times a second, and encoding/json's reflection was a fifth
// of the daemon's ingest CPU, so that shape is read by hand; anything else
// (escapes, null, a raw body, an unknown or oddly cased key, bad JSON) goes
// through encoding/json, whose errors name the field. FuzzDecodeReport
// holds the two to the same result.
func decodeReport(b []byte) (api.Report, error) {
	var r api.Report
	if decodeReportFast(b, &r) {
		return r, nil
	}
	r = api.Report{}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return r, jsonError(err)
	}
	if rest := bytes.TrimSpace(b[dec.InputOffset():]); len(rest) > 0 {
		return r, fmt.Errorf("%w: body: unexpected data after the report at byte %d", budget.ErrInvalid, dec.InputOffset())
	}
	return r, nil
}

// decodeReportFast reads a report made only of known keys with plain
// values: strings of printable ASCII without escapes, integers of up to 18
// digits, booleans. It reports false, leaving r partly filled, for
// anything else.
func decodeReportFast(b []byte, r *api.Report) bool {
	s := scanner{b: b}
	if !s.skip('{') {
		return false
	}
	if s.skip('}') {
		return s.end()
	}
	for {
		key, ok := s.str()
		if !ok || !s.skip(':') || !s.field(key[1:len(key)-1], r) {
			return false
		}
		if s.skip('}') {
			return s.end()
		}
		if !s.skip(',') {
			return false
		}
	}
}

// field reads the value of key into r.
func (s *scanner) field(key []byte, r *api.Report) bool {
	var ok bool
	switch string(key) {
	case "id":
		r.ID, ok = s.text()
	case "bottle":
		r.Bottle, ok = s.text()
	case "agent":
		r.Agent, ok = s.text()
	case "provider":
		r.Provider, ok = s.text()
	case "host":
		r.Host, ok = s.text()
	case "model":
		r.Model, ok = s.text()
	case "format":
		r.Format, ok = s.text()
	case "input_tokens":
		r.Input, ok = s.int()
	case "cache_read_tokens":
		r.CacheRead, ok = s.int()
	case "cache_write_tokens":
		r.CacheWrite, ok = s.int()
	case "output_tokens":
		r.Output, ok = s.int()
	case "reasoning_tokens":
		r.Reasoning, ok = s.int()
	case "counted_tokens":
		r.Counted, ok = s.int()
	case "complete":
		var v bool
		v, ok = s.boolean()
		r.Complete = &v
	case "ts":
		var q []byte
		q, ok = s.str()
		ok = ok && r.TS.UnmarshalJSON(q) == nil
	}
	return ok
}

// scanner walks one JSON value in b.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// skip consumes c, after whitespace, if it is next.
func (s *scanner) skip(c byte) bool {
	s.space()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// end reports whether only whitespace is left.
func (s *scanner) end() bool {
	s.space()
	return s.i == len(s.b)
}

// str reads a string of printable ASCII without escapes and returns it
// with its quotes.
func (s *scanner) str() ([]byte, bool) {
	s.space()
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return nil, false
	}
	for j := s.i + 1; j < len(s.b); j++ {
		switch c := s.b[j]; {
		case c == '"':
			q := s.b[s.i : j+1]
			s.i = j + 1
			return q, true
		case c < 0x20 || c > 0x7e || c == '\\':
			return nil, false
		}
	}
	return nil, false
}

func (s *scanner) text() (string, bool) {
	q, ok := s.str()
	if !ok {
		return "", false
	}
	return string(q[1 : len(q)-1]), true
}

// int reads an integer: JSON's -?(0|[1-9][0-9]*), at most 18 digits so
// that it cannot overflow, not followed by a fraction or an exponent.
func (s *scanner) int() (int64, bool) {
	s.space()
	neg := s.i < len(s.b) && s.b[s.i] == '-'
	if neg {
		s.i++
	}
	start := s.i
	var n int64
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		n = n*10 + int64(s.b[s.i]-'0')
		s.i++
	}
	digits := s.i - start
	if digits == 0 || digits > 18 || (digits > 1 && s.b[start] == '0') {
		return 0, false
	}
	if s.i < len(s.b) && (s.b[s.i] == '.' || s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		return 0, false
	}
	if neg {
		n = -n
	}
	return n, true
}

func (s *scanner) boolean() (bool, bool) {
	s.space()
	switch rest := s.b[s.i:]; {
	case bytes.HasPrefix(rest, []byte("true")):
		s.i += 4
		return true, true
	case bytes.HasPrefix(rest, []byte("false")):
		s.i += 5
		return false, true
	}
	return false, false
}
