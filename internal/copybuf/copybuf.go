// Package copybuf is the httputil.BufferPool the meter copies responses
// through. Without one the reverse proxy allocates (and zeroes) 32 KiB per
// request, which at meter rates is most of its garbage. The benchmark gives
// its plain proxy the same pool, to show what the meter costs beyond it.
package copybuf

import "sync"

// size is httputil.ReverseProxy's own copy buffer size.
const size = 32 << 10

// Pool hands out 32 KiB copy buffers; the zero value is ready to use.
type Pool struct{}

var buffers = sync.Pool{New: func() any { return new([size]byte) }}

// Get implements httputil.BufferPool.
func (Pool) Get() []byte { return buffers.Get().(*[size]byte)[:] }

// Put implements httputil.BufferPool; a buffer of another size is dropped.
func (Pool) Put(b []byte) {
	if cap(b) == size {
		buffers.Put((*[size]byte)(b[:size]))
	}
}
