package meter

import (
	"bufio"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
)

// maxZstdWindow bounds the memory a zstd body may make the meter hold:
// RFC 9659 has HTTP senders keep the window at 8 MiB or less. Brotli's own
// window is at most 16 MiB; gzip and deflate need 32 KiB.
const maxZstdWindow = 8 << 20

// errDecodeDone ends the writes to a decoder that has stopped reading.
var errDecodeDone = errors.New("decoder finished")

// contentEncodings splits a Content-Encoding header into its codings, in
// the order they were applied; identity is dropped. ok is false when one
// of them cannot be decoded.
func contentEncodings(header string) (codings []string, ok bool) {
	for _, c := range strings.Split(header, ",") {
		c = strings.ToLower(strings.TrimSpace(c))
		switch c {
		case "", "identity":
			continue
		case "x-gzip":
			c = "gzip"
		case "gzip", "deflate", "br", "zstd":
		default:
			return nil, false
		}
		codings = append(codings, c)
	}
	return codings, true
}

// decodingWriter is the usage parser's side of an encoded response: the
// encoded bytes written to it are decoded as they arrive and passed to dst,
// so the client receives the upstream's bytes unchanged while the parser
// reads plain JSON or SSE. Decoding runs in its own goroutine, fed through a
// pipe, because the decoders pull their input; only their windows and
// buffers are held, never the body.
type decodingWriter struct {
	pw   *io.PipeWriter
	done chan struct{}
}

// newDecodingWriter decodes codings (in the order they were applied) into
// dst. Close it to wait until everything written has reached dst.
func newDecodingWriter(codings []string, dst io.Writer) *decodingWriter {
	pr, pw := io.Pipe()
	d := &decodingWriter{pw: pw, done: make(chan struct{})}
	go d.run(pr, codings, dst)
	return d
}

// Write hands b to the decoder. It never fails: a body the meter cannot
// decode must still reach the client, it is only left uncounted.
func (d *decodingWriter) Write(b []byte) (int, error) {
	_, _ = d.pw.Write(b) // fails only once the decoder gave up; the rest is ignored
	return len(b), nil
}

// Close ends the input and waits for the decoder to finish.
func (d *decodingWriter) Close() error {
	d.pw.Close()
	<-d.done
	return nil
}

// run decodes until the input ends or turns out not to be decodable.
func (d *decodingWriter) run(pr *io.PipeReader, codings []string, dst io.Writer) {
	defer close(d.done)
	// Whatever happens, later writes must not block on a reader that left.
	defer pr.CloseWithError(errDecodeDone)
	var r io.Reader = pr
	for i := len(codings) - 1; i >= 0; i-- {
		dec, err := decoder(codings[i], r)
		if err != nil {
			return // not what the header said: left uncounted
		}
		defer dec.Close()
		r = dec
	}
	_, _ = io.Copy(dst, r) // a corrupt body ends the decoding; what came is counted
}

// decoder opens one coding over r.
func decoder(coding string, r io.Reader) (io.ReadCloser, error) {
	switch coding {
	case "gzip":
		return gzip.NewReader(r)
	case "deflate":
		return deflateReader(r)
	case "br":
		return io.NopCloser(brotli.NewReader(r)), nil
	case "zstd":
		z, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(maxZstdWindow))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		return z.IOReadCloser(), nil
	}
	return nil, fmt.Errorf("content coding %q not supported", coding)
}

// deflateReader reads HTTP "deflate": zlib-wrapped as RFC 9110 says, or the
// raw deflate some servers send instead, told apart by the zlib header.
func deflateReader(r io.Reader) (io.ReadCloser, error) {
	br := bufio.NewReader(r)
	head, err := br.Peek(2)
	if err != nil {
		return nil, fmt.Errorf("deflate: %w", err)
	}
	if head[0]&0x0f == 8 && (uint16(head[0])<<8|uint16(head[1]))%31 == 0 {
		return zlib.NewReader(br)
	}
	return flate.NewReader(br), nil
}
