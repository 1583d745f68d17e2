package api

import (
	"bytes"

	"github.com/bot-bottle/bottlecap/budget"
)

// The daemon reads thousands of reports a second and every sidecar reads
// the replies; encoding/json's reflection was a fifth of the ingest CPU on
// either side. The Decode*Fast functions read the plain shapes the daemon
// and its clients write — known keys, printable ASCII strings without
// escapes, integers of up to 18 digits, booleans — and report false for
// anything else (escapes, null, unknown or oddly cased keys, bad JSON),
// leaving the value partly filled: the caller then decodes with
// encoding/json, whose errors name the field. Fuzz tests hold each to
// encoding/json's result.

// DecodeReportFast reads a report (one NDJSON line or a single report's
// body).
func DecodeReportFast(b []byte, r *Report) bool {
	s := scanner{b: b}
	return s.object(func(key []byte) bool { return s.reportField(key, r) }) && s.end()
}

// reportField reads the value of key into r.
func (s *scanner) reportField(key []byte, r *Report) bool {
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
	case "allowance":
		r.Allowance, ok = s.text()
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

// object walks one JSON object, calling field for each key (without
// quotes); field reads the value.
func (s *scanner) object(field func(key []byte) bool) bool {
	if !s.skip('{') {
		return false
	}
	if s.skip('}') {
		return true
	}
	for {
		key, ok := s.str()
		if !ok || !s.skip(':') || !field(key[1:len(key)-1]) {
			return false
		}
		if s.skip('}') {
			return true
		}
		if !s.skip(',') {
			return false
		}
	}
}

// DecodeIngestReplyFast reads POST /v1/usage's answer.
func DecodeIngestReplyFast(b []byte, r *IngestReply) bool {
	s := scanner{b: b}
	seen := false
	return s.object(func(key []byte) bool {
		var ok bool
		switch string(key) {
		case "accepted":
			var n int64
			n, ok = s.int()
			r.Accepted = int(n)
		case "duplicates":
			var n int64
			n, ok = s.int()
			r.Duplicates = int(n)
		case "verdicts":
			// A second array would be decoded into the first's elements
			// by encoding/json; leave that rarity to it.
			ok = !seen
			seen = true
			if ok {
				r.Verdicts, ok = s.verdicts()
			}
		}
		return ok
	}) && s.end()
}

// DecodeVerdictFast reads GET /v1/verdict's answer.
func DecodeVerdictFast(b []byte, v *budget.Verdict) bool {
	s := scanner{b: b}
	return s.verdict(v) && s.end()
}

// verdicts reads an array of verdicts.
func (s *scanner) verdicts() ([]budget.Verdict, bool) {
	if !s.skip('[') {
		return nil, false
	}
	out := []budget.Verdict{}
	if s.skip(']') {
		return out, true
	}
	for {
		var v budget.Verdict
		if !s.verdict(&v) {
			return nil, false
		}
		out = append(out, v)
		if s.skip(']') {
			return out, true
		}
		if !s.skip(',') {
			return nil, false
		}
	}
}

func (s *scanner) verdict(v *budget.Verdict) bool {
	return s.object(func(key []byte) bool {
		var ok bool
		var text string
		switch string(key) {
		case "allowed":
			v.Allowed, ok = s.boolean()
		case "unlimited":
			v.Unlimited, ok = s.boolean()
		case "bottle":
			v.Bottle, ok = s.text()
		case "agent":
			v.Agent, ok = s.text()
		case "provider":
			v.Provider, ok = s.text()
		case "scope":
			text, ok = s.text()
			v.Kind = budget.ScopeKind(text)
		case "scope_id":
			v.ID, ok = s.text()
		case "state":
			text, ok = s.text()
			v.State = budget.State(text)
		case "reason":
			v.Reason, ok = s.text()
		case "limit":
			v.Limit, ok = s.int()
		case "used":
			v.Used, ok = s.int()
		case "held":
			v.Held, ok = s.int()
		case "remaining":
			v.Remaining, ok = s.int()
		case "window":
			v.Window, ok = s.text()
		case "resets_at":
			var q []byte
			q, ok = s.str()
			ok = ok && v.ResetsAt.UnmarshalJSON(q) == nil
		}
		return ok
	})
}
