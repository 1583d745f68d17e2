package usage_test

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/meter/usage"
)

// stream generates a long provider stream on the fly: head, then body
// repeated until size bytes have been produced, then tail. Nothing but the
// three pieces is ever held.
type stream struct {
	head, body, tail []byte
	size, sent       int64
	pending          []byte
	state            int // 0 head, 1 body, 2 tail, 3 done
}

func (s *stream) Read(p []byte) (int, error) {
	for len(s.pending) == 0 {
		switch {
		case s.state == 0:
			s.pending, s.state = s.head, 1
		case s.state == 1 && s.sent < s.size:
			s.pending = s.body
		case s.state == 1:
			s.pending, s.state = s.tail, 2
		default:
			return 0, io.EOF
		}
	}
	n := copy(p, s.pending)
	s.pending, s.sent = s.pending[n:], s.sent+int64(n)
	return n, nil
}

// drive pushes r through a parser in odd-sized writes, checking after each
// that the parser's buffers stay below bound, and returns the result and the
// growth of the live heap and of all allocation.
func drive(t *testing.T, r io.Reader, bound int) (res usage.Result, heapGrowth, allocated int64) {
	t.Helper()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	p := usage.NewParser(usage.Auto, "")
	buf := make([]byte, 32<<10)
	sizes := []int{1, 7, 4093, 32 << 10, 100, 16 << 10}
	for i := 0; ; i++ {
		n, err := r.Read(buf[:sizes[i%len(sizes)]])
		p.Write(buf[:n])
		if c := usage.BufferCap(p); c > bound {
			t.Fatalf("after write %d the parser holds %d bytes, want at most %d", i, c, bound)
		}
		if err == io.EOF {
			break
		}
	}
	res = p.Result()
	if s, ok := r.(*stream); ok && s.sent < s.size {
		t.Fatalf("only %d bytes streamed, want %d", s.sent, s.size)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(p)
	return res, int64(after.HeapInuse) - int64(before.HeapInuse), int64(after.TotalAlloc - before.TotalAlloc)
}

// bigStream is the length of the long-stream tests. Scanning is cheap
// enough (about 2 s for 100 MiB under -race) that the full size always runs.
const bigStream = 100 << 20

// TestLongSSEStream passes a long chat stream through one parser: memory
// must stay flat and nothing may be allocated per event.
func TestLongSSEStream(t *testing.T) {
	s := &stream{
		head: []byte(": OPENROUTER PROCESSING\n\ndata: {\"id\":\"chatcmpl-big\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n"),
		body: []byte("data: {\"id\":\"chatcmpl-big\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"" + strings.Repeat("lorem ipsum ", 20) + "\"},\"finish_reason\":null}]}\r\n\r\n: keep-alive\n\n"),
		tail: []byte("data: {\"id\":\"chatcmpl-big\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":1000,\"completion_tokens\":999999}}\n\ndata: [DONE]\n\n"),
		size: bigStream,
	}
	res, heap, alloc := drive(t, s, 64<<10)
	if want := (budget.Usage{Input: 1000, Output: 999999}); res.Usage != want || !res.Complete || res.ID != "chatcmpl-big" {
		t.Fatalf("result %+v, want %+v complete with id chatcmpl-big", res, want)
	}
	t.Logf("%d MiB streamed: heap in use grew %d KiB, %d KiB allocated in all", bigStream>>20, heap>>10, alloc>>10)
	if heap > 4<<20 {
		t.Errorf("heap in use grew by %d bytes, want under 4 MiB", heap)
	}
	if alloc > bigStream/20 {
		t.Errorf("allocated %d bytes for a %d-byte stream, want under 5%%", alloc, bigStream)
	}
}

// TestLongJSONArrayStream does the same for Gemini's JSON-array stream, where
// every chunk carries (cumulative) usage and is decoded.
func TestLongJSONArrayStream(t *testing.T) {
	chunk := `{"candidates":[{"content":{"parts":[{"text":"` + strings.Repeat(`x\"{}`, 800) + `"}],"role":"model"},"index":0}],"usageMetadata":{"promptTokenCount":18,"candidatesTokenCount":5,"thoughtsTokenCount":2},"modelVersion":"g","responseId":"r1"}`
	s := &stream{
		head: []byte("[" + chunk),
		body: []byte(",\r\n" + chunk),
		tail: []byte(",\r\n" + strings.Replace(chunk, `"index":0}`, `"index":0,"finishReason":"STOP"}`, 1) + "]"),
		size: bigStream / 4,
	}
	res, heap, _ := drive(t, s, 64<<10)
	if want := (budget.Usage{Input: 18, Output: 7, Reasoning: 2}); res.Usage != want || !res.Complete {
		t.Fatalf("result %+v, want %+v complete", res, want)
	}
	if heap > 4<<20 {
		t.Errorf("heap in use grew by %d bytes, want under 4 MiB", heap)
	}
}

// TestOversizedEvent: an event over MaxEventSize is skipped, its memory given
// back, and the stream goes on.
func TestOversizedEvent(t *testing.T) {
	huge := bytes.Repeat([]byte("a"), usage.MaxEventSize+1)
	tests := []struct {
		name        string
		head, after string
	}{
		{"sse data line", "data: {\"x\":\"", "\"}\n\n"},
		{"sse comment line", ": ", "\n\n"},
		{"json line", "{\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":5},\"x\":\"", "\"}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := usage.NewParser(usage.OpenAIChat, "")
			p.Write([]byte(tt.head))
			for b := huge; len(b) > 0; b = b[min(len(b), 1<<20):] {
				p.Write(b[:min(len(b), 1<<20)])
			}
			p.Write([]byte(tt.after))
			last := "data: " + chatUsage + "\n\n"
			if strings.HasPrefix(tt.head, "{") {
				last = chatUsage + "\n"
			}
			p.Write([]byte(last))
			if got := p.Result(); got.Usage != chatWant {
				t.Errorf("usage %+v, want %+v", got.Usage, chatWant)
			}
			if c := usage.BufferCap(p); c > 64<<10 {
				t.Errorf("parser still holds %d bytes, want at most 64 KiB", c)
			}
		})
	}
}

func ExampleParser() {
	p := usage.NewParser(usage.Auto, "/v1/messages")
	fmt.Fprint(p, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"usage\":{\"input_tokens\":12,\"cache_read_input_tokens\":100,\"output_tokens\":1}}}\n\n")
	fmt.Fprint(p, "event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":30}}\n\n")
	r := p.Result()
	fmt.Println(r.Format, r.ID, r.Usage.Input, r.Usage.CacheRead, r.Usage.Output, r.Complete)
	// Output: anthropic msg_1 12 100 30 true
}
