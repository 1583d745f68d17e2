package estimate

import (
	"bytes"
	"encoding/binary"
	"math/bits"
)

// The scanner's lexical helpers: literals, strings, whitespace, and how a
// string's bytes are weighed.

// literal skips a number, true, false or null, counting its bytes, and
// returns them (nil when it is none).
func (s *scanner) literal() []byte {
	start := s.i
	switch s.b[s.i] {
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 't', 'f', 'n':
	default:
		s.fail()
		return nil
	}
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ',', '}', ']', ' ', '\t', '\r', '\n':
			s.count(int64(s.i - start))
			return s.b[start:s.i]
		}
		s.i++
	}
	s.fail()
	return nil
}

// str returns the raw contents of the string at s.i (escapes left as they
// are) and moves past it.
func (s *scanner) str() []byte {
	start := s.i + 1
	for j := start; ; j++ {
		k := bytes.IndexByte(s.b[j:], '"')
		if k < 0 {
			s.fail()
			return nil
		}
		j += k
		if escapedQuote(s.b[start:j]) {
			continue
		}
		s.i = j + 1
		return s.b[start:j]
	}
}

// escapedQuote reports whether a quote after b is escaped: b ends in an odd
// number of backslashes.
func escapedQuote(b []byte) bool {
	n := 0
	for i := len(b) - 1; i >= 0 && b[i] == '\\'; i-- {
		n++
	}
	return n%2 == 1
}

func (s *scanner) count(n int64) {
	if s.mute == 0 {
		s.c.text += n
	}
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\r', '\n':
			s.i++
		default:
			return
		}
	}
}

// peek is the byte at s.i, or 0 at the end.
func (s *scanner) peek() byte {
	if s.i >= len(s.b) || s.failed {
		return 0
	}
	return s.b[s.i]
}

func (s *scanner) fail() {
	s.failed = true
	s.i = len(s.b)
}

// weigh is the byte length of a string as the estimate counts it: its raw
// JSON bytes (an escape counts as written, a little over the character it
// stands for) plus one for each non-ASCII character, since tokenizers split
// multi-byte characters more finely than ASCII text (a CJK character, three
// bytes, is about one token; four counted bytes are about one at the
// priors' ratios).
func weigh(b []byte) int64 {
	return int64(len(b)) + multibyteLeads(b)
}

// multibyteLeads counts the leading bytes of multi-byte UTF-8 sequences
// (11xxxxxx), eight bytes at a time.
func multibyteLeads(b []byte) int64 {
	const high = 0x8080808080808080
	n := 0
	for len(b) >= 8 {
		w := binary.LittleEndian.Uint64(b)
		n += bits.OnesCount64(w & (w << 1) & high)
		b = b[8:]
	}
	for _, c := range b {
		if c >= 0xC0 {
			n++
		}
	}
	return int64(n)
}

// base64ish reports whether b uses only the base64 alphabet (standard or
// URL-safe): prose and code have spaces or punctuation within 64 bytes.
func base64ish(b []byte) bool {
	for _, c := range b {
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9',
			c == '+', c == '/', c == '-', c == '_', c == '=':
		default:
			return false
		}
	}
	return true
}
