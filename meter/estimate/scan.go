package estimate

import "bytes"

// counts is what a request body holds that the model reads, as one pass
// over its JSON finds it.
type counts struct {
	// text is the weighted byte length of everything the model reads:
	// strings, keys and numbers of the counted members (see weigh).
	text int64
	// images is the number of images, each costing a fixed number of tokens
	// however large its encoding.
	images int64
	// tools is true when the body defines tools (some providers add a
	// hidden system prompt for them).
	tools bool
	// chained is true when the body continues state kept by the provider
	// (conversation, cachedContent) whose tokens it does not contain.
	chained bool
	// previous is the Responses previous_response_id: the response whose
	// context this request continues.
	previous string
	// model is the top-level "model" string.
	model string
	// stated is what the body says of its own output: each cap field's
	// value (see capField), as statedValue reads it; capsUnsure is set
	// when a key may name a cap field to the provider's parser but not to
	// the scanner's, so the body states no cap the meter trusts.
	stated     [nCapFields]int64
	capsUnsure bool
}

// maxDepth bounds the nesting the scanner follows; a deeper body is not a
// real request and gets the fallback estimate.
const maxDepth = 256

// maxModel bounds the model name kept from a body.
const maxModel = 256

// minBinary is the length from which a base64 "data" string is taken for
// an attachment rather than text.
const minBinary = 64

// scanner reads one JSON request body. It validates only the structure it
// needs (brackets, strings, separators), allocates nothing but the model
// name, and counts as it goes.
type scanner struct {
	b      []byte
	i      int
	c      counts
	mute   int // > 0 inside members the model does not read
	failed bool
	// genConfig is set while the value of a top-level generationConfig is
	// read, whose own members may state Gemini's output cap.
	genConfig bool
}

// scan counts body, a JSON object; ok is false when it is not one.
func scan(body []byte) (c counts, ok bool) {
	s := scanner{b: body}
	s.ws()
	if s.peek() != '{' {
		return s.c, false
	}
	s.object(nil, 1)
	s.ws()
	return s.c, !s.failed && s.i == len(s.b)
}

// frame is what an object being read has shown about the attachment it may
// be: attachments are told by a type or media type that can come before or
// after the payload, so payloads wait in the frame until the object closes.
type frame struct {
	image       bool  // "type": "image"/"image_url"/"input_image", or an image/* media type
	other       bool  // a media type or type naming something else (a PDF, say)
	binaries    int64 // base64 payloads waiting for their type
	binaryBytes int64
	refs        int64 // URLs and file ids waiting for their type
}

// keyKind is what a member's key says about its string value.
type keyKind uint8

const (
	keyPlain  keyKind = iota
	keyType           // type
	keyMedia          // media_type, mimeType, mime_type
	keyData           // data: a base64 payload (Anthropic source, Gemini inlineData)
	keyRef            // url, image_url, file_id, fileUri, file_uri
	keyOpaque         // signatures the model does not read as text
)

func kindOf(key []byte) keyKind {
	switch string(key) {
	case "type":
		return keyType
	case "media_type", "mimeType", "mime_type":
		return keyMedia
	case "data":
		return keyData
	case "url", "image_url", "file_id", "fileUri", "file_uri":
		return keyRef
	case "signature", "thoughtSignature", "thought_signature":
		return keyOpaque
	}
	return keyPlain
}

// topKind is how a member of the body itself is counted.
type topKind uint8

const (
	topCounted   topKind = iota
	topModel             // the model name, kept, not counted
	topParam             // a sampling or transport parameter the model does not read
	topChain             // a reference to state the provider keeps
	topPrevious          // previous_response_id
	topTools             // tool definitions: counted, and noted
	topCap               // a parameter that states an output cap or a number of choices
	topGenConfig         // Gemini's generationConfig: counted, its caps noted
)

func topKindOf(key []byte) topKind {
	switch string(key) {
	case "model":
		return topModel
	case "tools":
		return topTools
	case "previous_response_id":
		return topPrevious
	case "conversation", "cachedContent", "cached_content":
		return topChain
	case "max_tokens", "max_completion_tokens", "max_output_tokens", "n", "best_of":
		return topCap
	case "generationConfig", "generation_config":
		return topGenConfig
	case "stream", "stream_options", "temperature", "top_p", "top_k", "topP", "topK", "seed", "stop", "user", "metadata",
		"store", "service_tier", "parallel_tool_calls", "logprobs", "top_logprobs",
		"frequency_penalty", "presence_penalty", "logit_bias", "reasoning_effort", "reasoning",
		"thinking", "include", "truncation", "background", "prompt_cache_key",
		"prompt_cache_retention", "safety_identifier", "safetySettings", "safety_settings",
		"context_management", "container", "anthropic_version", "cache_control", "modalities",
		"verbosity":
		return topParam
	}
	return topCounted
}

// object reads the object at s.i. parent is the object whose member's value
// it is (nil inside an array), to which an unresolved attachment passes.
func (s *scanner) object(parent *frame, depth int) {
	if depth > maxDepth {
		s.fail()
		return
	}
	s.i++ // '{'
	var f frame
	s.ws()
	if s.peek() == '}' {
		s.i++
		return
	}
	for !s.failed {
		s.ws()
		if s.peek() != '"' {
			s.fail()
			return
		}
		key := s.str()
		s.ws()
		if s.peek() != ':' {
			s.fail()
			return
		}
		s.i++
		switch {
		case depth == 1:
			s.topMember(&f, key)
		case depth == 2 && s.genConfig:
			s.count(int64(len(key)))
			if c := genCapOf(key); c != capNone {
				s.state(c, s.statedValue(&f, depth))
			} else {
				s.suspect(key, genCapNames)
				s.value(&f, kindOf(key), depth)
			}
		default:
			s.count(int64(len(key)))
			s.value(&f, kindOf(key), depth)
		}
		s.ws()
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			s.resolve(&f, parent)
			return
		default:
			s.fail()
			return
		}
	}
}

// topMember reads one member of the body itself.
func (s *scanner) topMember(f *frame, key []byte) {
	switch topKindOf(key) {
	case topModel:
		s.c.model = s.topString(f)
	case topPrevious:
		s.c.previous = s.topString(f)
	case topParam:
		s.muted(f)
	case topChain:
		s.ws()
		rest := s.b[s.i:]
		s.c.chained = s.c.chained || !bytes.HasPrefix(rest, []byte("null")) && !bytes.HasPrefix(rest, []byte(`""`))
		s.muted(f)
	case topTools:
		s.count(int64(len(key)))
		before := s.c.text
		s.value(f, keyPlain, 1)
		s.c.tools = s.c.tools || s.c.text > before
	case topCap:
		s.mute++
		s.state(topCapOf(key), s.statedValue(f, 1))
		s.mute--
	case topGenConfig:
		s.count(int64(len(key)))
		s.genConfig = true
		s.value(f, keyPlain, 1)
		s.genConfig = false
	default:
		s.suspect(key, topCapNames)
		s.count(int64(len(key)))
		s.value(f, keyPlain, 1)
	}
}

// topString reads a value without counting it and returns it (at most
// maxModel bytes) if it is a string.
func (s *scanner) topString(f *frame) string {
	s.ws()
	if s.peek() != '"' {
		s.muted(f)
		return ""
	}
	v := s.str()
	return string(v[:min(len(v), maxModel)])
}

// muted reads a value without counting it.
func (s *scanner) muted(f *frame) {
	s.mute++
	s.value(f, keyPlain, 1)
	s.mute--
}

// value reads the value at s.i; f is the object it belongs to, or nil.
func (s *scanner) value(f *frame, key keyKind, depth int) {
	s.ws()
	switch c := s.peek(); c {
	case '"':
		s.stringValue(f, key, s.str())
	case '{':
		s.object(f, depth+1)
	case '[':
		s.array(depth + 1)
	case 0:
		s.fail()
	default:
		s.literal()
	}
}

// statedValue reads the value of a member that states a cap (counted as
// any value where the model reads it) and returns it as stated: a
// positive integer, or invalidCap for anything else.
func (s *scanner) statedValue(f *frame, depth int) int64 {
	s.ws()
	switch s.peek() {
	case '"', '{', '[', 0:
		s.value(f, keyPlain, depth)
		return invalidCap
	}
	return parseCap(s.literal())
}

// array reads the array at s.i.
func (s *scanner) array(depth int) {
	if depth > maxDepth {
		s.fail()
		return
	}
	s.i++ // '['
	s.ws()
	if s.peek() == ']' {
		s.i++
		return
	}
	for !s.failed {
		s.value(nil, keyPlain, depth)
		s.ws()
		switch s.peek() {
		case ',':
			s.i++
		case ']':
			s.i++
			return
		default:
			s.fail()
			return
		}
	}
}

// stringValue counts one string value by what its key says it is.
func (s *scanner) stringValue(f *frame, key keyKind, v []byte) {
	if s.mute > 0 {
		return
	}
	if media, ok := bytes.CutPrefix(v, []byte("data:")); ok {
		// A data URL says its own media type.
		if bytes.HasPrefix(media, []byte("image/")) {
			s.c.images++
		} else {
			s.count(weigh(v))
		}
		return
	}
	if f == nil {
		key = keyPlain
	}
	switch key {
	case keyType:
		s.count(weigh(v))
		switch string(v) {
		case "image", "image_url", "input_image":
			f.image = true
		case "document", "input_file":
			f.other = true
		}
	case keyMedia:
		f.image = f.image || bytes.HasPrefix(v, []byte("image/"))
		f.other = f.other || !bytes.HasPrefix(v, []byte("image/"))
	case keyData:
		if len(v) >= minBinary && base64ish(v[:minBinary]) {
			f.binaries++
			f.binaryBytes += weigh(v)
			return
		}
		s.count(weigh(v))
	case keyRef:
		s.count(weigh(v))
		f.refs++
	case keyOpaque:
	default:
		s.count(weigh(v))
	}
}

// resolve settles the attachments an object holds when it closes: images
// cost their fixed price, other payloads count as text (conservative: a
// PDF's pages cost more than its bytes suggest only when they are images),
// and what the object cannot tell passes to its parent, which often holds
// the type ({"type":"image","source":{...}}). Unresolved at the top, a
// payload counts as text and a reference as nothing more than its text.
func (s *scanner) resolve(f, parent *frame) {
	switch {
	case f.binaries == 0 && f.refs == 0:
	case f.image:
		s.c.images += f.binaries + f.refs
	case f.other || parent == nil:
		s.count(f.binaryBytes)
	default:
		parent.binaries += f.binaries
		parent.binaryBytes += f.binaryBytes
		parent.refs += f.refs
	}
}
