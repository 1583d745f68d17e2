package meter_test

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"io"
	"net/http"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
)

// flushWriter is an encoder that can push out what it holds, so a stream
// is sent event by event, compressed, as a real upstream would.
type flushWriter interface {
	io.WriteCloser
	Flush() error
}

// encoders are the content codings an upstream may use despite
// Accept-Encoding: identity; deflate-raw is the headerless deflate some
// servers send under "deflate".
var encoders = []struct {
	name, header string
	open         func(w io.Writer) flushWriter
}{
	{"gzip", "gzip", func(w io.Writer) flushWriter { return gzip.NewWriter(w) }},
	{"deflate", "deflate", func(w io.Writer) flushWriter { return zlib.NewWriter(w) }},
	{"deflate-raw", "deflate", func(w io.Writer) flushWriter { z, _ := flate.NewWriter(w, 5); return z }},
	{"br", "br", func(w io.Writer) flushWriter { return brotli.NewWriter(w) }},
	{"zstd", "zstd", func(w io.Writer) flushWriter { z, _ := zstd.NewWriter(w); return z }},
}

// encodedStream compresses events one flush at a time and returns the
// pieces, as they would leave the upstream.
func encodedStream(t *testing.T, open func(io.Writer) flushWriter, events []string) [][]byte {
	t.Helper()
	var buf bytes.Buffer
	enc := open(&buf)
	var pieces [][]byte
	for _, ev := range events {
		if _, err := io.WriteString(enc, ev); err != nil {
			t.Fatal(err)
		}
		if err := enc.Flush(); err != nil {
			t.Fatal(err)
		}
		pieces = append(pieces, bytes.Clone(buf.Bytes()))
		buf.Reset()
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	return append(pieces, bytes.Clone(buf.Bytes()))
}

// TestEncodedStreamCountedAndPassedAsIs: an upstream that compresses an SSE
// stream despite Accept-Encoding: identity, flushing after every event. The
// client (which asks for no decoding) must receive exactly the upstream's
// bytes, and the ledger must hold the fixture's counts, as for a plain
// stream.
func TestEncodedStreamCountedAndPassedAsIs(t *testing.T) {
	const file = "openai-responses-stream-reasoning.sse"
	want := fixtures(t)[file]
	events := sseEvents(readFixture(t, file))
	for _, enc := range encoders {
		t.Run(enc.name, func(t *testing.T) {
			d := startDaemon(t) // its own ledger: every run reports the same response id
			pieces := encodedStream(t, enc.open, events)
			up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				if got := r.Header.Get("Accept-Encoding"); got != "identity" {
					t.Errorf("upstream asked for Accept-Encoding %q, want identity", got)
				}
				w.Header().Set("Content-Type", "text/event-stream")
				w.Header().Set("Content-Encoding", enc.header)
				for _, p := range pieces {
					w.Write(p)
					w.(http.Flusher).Flush()
				}
			})
			bottle := "enc-" + enc.name
			_, srv := meterFor(t, d.Sock, bottle, up.URL, nil)
			c := &http.Client{Transport: &http.Transport{DisableCompression: true}}
			resp, err := c.Post(srv.URL+"/v1/responses", "application/json", bytes.NewReader([]byte(`{"stream":true}`)))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got, _ := io.ReadAll(resp.Body)
			if !bytes.Equal(got, bytes.Join(pieces, nil)) || resp.Header.Get("Content-Encoding") != enc.header {
				t.Errorf("client got %d bytes (Content-Encoding %q), want the upstream's %d encoded bytes unchanged",
					len(got), resp.Header.Get("Content-Encoding"), len(bytes.Join(pieces, nil)))
			}
			eventually(t, "the report lands", func() bool { return len(d.reports(bottle)) == 1 })
			r := d.reports(bottle)[0]
			if r.Usage != want.Usage || !r.Complete {
				t.Errorf("report usage %+v complete %v, want %+v complete", r.Usage, r.Complete, want.Usage)
			}
		})
	}
}

// TestUnknownEncodingPassesUncounted: a coding the meter cannot read still
// reaches the client intact, and is reported (incomplete, zero) rather
// than dropped.
func TestUnknownEncodingPassesUncounted(t *testing.T) {
	d := startDaemon(t)
	body := []byte("\x00\x01not-a-known-coding")
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "compress")
		w.Write(body)
	})
	_, srv := meterFor(t, d.Sock, "enc-unknown", up.URL, nil)
	c := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	resp, err := c.Post(srv.URL+"/v1/responses", "application/json", bytes.NewReader([]byte(`{}`)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if got, _ := io.ReadAll(resp.Body); !bytes.Equal(got, body) {
		t.Errorf("client got %q, want %q", got, body)
	}
	eventually(t, "the report lands", func() bool { return len(d.reports("enc-unknown")) == 1 })
	if r := d.reports("enc-unknown")[0]; r.Complete {
		t.Errorf("report %+v claims completeness for a body nobody could read", r)
	}
}
