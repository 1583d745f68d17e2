package usage

import "bytes"

// The generated content of a response — text, tool-call arguments,
// thinking — is what the meter counts output from when the provider's own
// count does not arrive (SPEC section 4). deltaBytes measures it in one
// event: the byte length of the members each format keeps it in, with a
// JSON escape counted as the character it stands for (\uXXXX as three
// bytes, the most a UTF-16 unit takes in UTF-8) and an object value (a tool
// call's arguments in a whole body) at its raw length.

// deltaKey is a member that may hold generated content.
type deltaKey uint8

const (
	dNone             deltaKey = iota
	dContent                   // chat delta/message content; Anthropic compaction delta
	dReasoningContent          // chat reasoning_content (DeepSeek, vLLM)
	dReasoning                 // chat reasoning (OpenRouter)
	dRefusal                   // chat refusal
	dArguments                 // chat tool_calls[].function.arguments; Responses function_call
	dText                      // Anthropic, Gemini and Responses text; legacy completions
	dDelta                     // Responses *.delta events
	dPartialJSON               // Anthropic input_json_delta
	dThinking                  // Anthropic thinking_delta and thinking blocks
	dInput                     // Anthropic tool_use input (object); Responses custom tool input
	dArgs                      // Gemini functionCall.args (object)
	dCode                      // Gemini executableCode.code
	nDeltaKeys
)

func deltaKeyOf(k []byte) deltaKey {
	switch string(k) {
	case "content":
		return dContent
	case "reasoning_content":
		return dReasoningContent
	case "reasoning":
		return dReasoning
	case "refusal":
		return dRefusal
	case "arguments":
		return dArguments
	case "text":
		return dText
	case "delta":
		return dDelta
	case "partial_json":
		return dPartialJSON
	case "thinking":
		return dThinking
	case "input":
		return dInput
	case "args":
		return dArgs
	case "code":
		return dCode
	}
	return dNone
}

// deltaScan is what one pass over an event found: the bytes under each
// key (at any depth; string values, and object values of input and args)
// and the event's top-level type and object.
type deltaScan struct {
	sums   [nDeltaKeys]int64
	typ    []byte
	object []byte
}

// deltaBytes is the generated content in one event of format f; name is
// its SSE event name. Only events that add content count: a stream's
// closing events repeat the whole text and must not count it twice.
func deltaBytes(f Format, data, name []byte) int64 {
	d := scanDeltas(data)
	typ := d.typ
	if len(typ) == 0 {
		typ = name
	}
	s := &d.sums
	switch f {
	case OpenAIChat:
		n := s[dContent] + s[dReasoningContent] + s[dReasoning] + s[dRefusal] + s[dArguments]
		if string(d.object) == "text_completion" {
			n += s[dText]
		}
		return n
	case OpenAIResponses:
		switch {
		case bytes.HasSuffix(typ, []byte(".delta")) && string(typ) != "response.audio.delta":
			return s[dDelta]
		case len(typ) == 0: // a whole response body
			return s[dText] + s[dArguments] + s[dInput]
		}
	case Anthropic:
		switch string(typ) {
		case "content_block_delta":
			return s[dText] + s[dPartialJSON] + s[dThinking] + s[dContent]
		case "message": // a whole message body
			return s[dText] + s[dThinking] + s[dInput]
		}
	case Gemini:
		return s[dText] + s[dArgs] + s[dCode]
	}
	return 0
}

// scanDeltas walks one event's JSON. It is lenient: on malformed or cut
// JSON it keeps what it found before the damage.
func scanDeltas(data []byte) (d deltaScan) {
	depth := 0
	pending := dNone // the key whose value comes next
	var top []byte   // the key of the current top-level member
	for i := 0; i < len(data); i++ {
		switch c := data[i]; c {
		case '"':
			end := stringEnd(data, i+1)
			if end < 0 {
				return d
			}
			s := data[i+1 : end]
			i = end
			if j := skipSpace(data, end+1); j < len(data) && data[j] == ':' {
				pending, i = deltaKeyOf(s), j
				if depth == 1 {
					top = s
				}
				continue
			}
			d.sums[pending] += unescapedLen(s)
			if depth == 1 {
				d.topValue(top, s)
			}
			pending = dNone
		case '{', '[':
			if c == '{' && (pending == dInput || pending == dArgs) {
				end := valueEnd(data, i)
				d.sums[pending] += int64(end - i)
				i, pending = end-1, dNone
				continue
			}
			depth++
			pending = dNone
		case '}', ']':
			depth--
			pending = dNone
		case ',':
			pending = dNone
		}
	}
	return d
}

// topValue keeps the top-level type and object.
func (d *deltaScan) topValue(key, v []byte) {
	switch string(key) {
	case "type":
		d.typ = v
	case "object":
		d.object = v
	}
}

// stringEnd is the index of the quote closing the string whose contents
// start at i, or -1 when the data ends first.
func stringEnd(data []byte, i int) int {
	for {
		k := bytes.IndexByte(data[i:], '"')
		if k < 0 {
			return -1
		}
		i += k
		n := 0
		for j := i - 1; j >= 0 && data[j] == '\\'; j-- {
			n++
		}
		if n%2 == 0 {
			return i
		}
		i++
	}
}

// valueEnd is the index just past the object or array starting at i, or
// len(data) when it is cut short.
func valueEnd(data []byte, i int) int {
	depth := 0
	for ; i < len(data); i++ {
		switch data[i] {
		case '"':
			end := stringEnd(data, i+1)
			if end < 0 {
				return len(data)
			}
			i = end
		case '{', '[':
			depth++
		case '}', ']':
			if depth--; depth == 0 {
				return i + 1
			}
		}
	}
	return len(data)
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' || data[i] == '\n') {
		i++
	}
	return i
}

// unescapedLen is the UTF-8 length of a JSON string's contents: each
// escape counted as the bytes of what it stands for (a surrogate half as
// two, so a pair makes the four of its character).
func unescapedLen(s []byte) int64 {
	n := int64(len(s))
	for i := bytes.IndexByte(s, '\\'); i >= 0; {
		if i+1 >= len(s) {
			break
		}
		if s[i+1] == 'u' && i+6 <= len(s) {
			n -= 6 - utf8Len(s[i+2:i+6])
			i += 6
		} else {
			n-- // two bytes for one
			i += 2
		}
		k := bytes.IndexByte(s[min(i, len(s)):], '\\')
		if k < 0 {
			break
		}
		i += k
	}
	return max(n, 0)
}

// utf8Len is the UTF-8 length of the UTF-16 unit a \uXXXX escape spells.
func utf8Len(hex []byte) int64 {
	var u rune
	for _, c := range hex {
		switch {
		case '0' <= c && c <= '9':
			u = u<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			u = u<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			u = u<<4 | rune(c-'A'+10)
		default:
			return 6 // not an escape: as written
		}
	}
	switch {
	case u < 0x80:
		return 1
	case u < 0x800:
		return 2
	case 0xD800 <= u && u < 0xE000:
		return 2
	}
	return 3
}
