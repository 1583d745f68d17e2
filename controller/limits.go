package controller

import (
	"time"

	"github.com/bot-bottle/bottlecap/api"
)

// Limits bound what one local peer can take of the daemon: time on a
// connection, connections, and memory for ingest. Any peer that can open
// the socket may report usage, so none of these may be unbounded, or one
// misbehaving sidecar could starve the gate every other agent waits on. A
// zero field takes its value from DefaultLimits.
type Limits struct {
	// ReadHeaderTimeout bounds reading a request's header.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included, so that a
	// body trickled a byte at a time is cut off.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing a reply, counted from the end of reading
	// the request. The event stream bounds each write by EventWriteTimeout
	// instead.
	WriteTimeout time.Duration
	// IdleTimeout closes a kept-alive connection that sends no request.
	IdleTimeout time.Duration
	// EventWriteTimeout is how long one event may take to reach a
	// subscriber; one that stops reading is dropped.
	EventWriteTimeout time.Duration
	// MaxConnsPerPeer caps the open connections of one peer: a container,
	// or a uid on the host. Connections past the cap are answered 503 and
	// closed at once.
	MaxConnsPerPeer int
	// MaxConnsOperator is the cap for host processes of root and of the
	// daemon's own uid (the dashboard, the CLI, benchmarks), which a
	// flooding sidecar must not lock out.
	MaxConnsOperator int
	// MaxIngestReports caps the reports of one POST /v1/usage (413 past it).
	MaxIngestReports int
	// IngestBytesInFlight bounds the bytes of ingest bodies being decoded
	// at once; further ingests wait their turn.
	IngestBytesInFlight int64
}

// DefaultLimits are the limits a daemon runs with unless told otherwise;
// they are documented in README's "Security model".
func DefaultLimits() Limits {
	return Limits{
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		// Longer than a default 30 s CPU profile (GET /debug/pprof/profile),
		// which net/http/pprof refuses to take beyond the WriteTimeout.
		WriteTimeout:        60 * time.Second,
		IdleTimeout:         60 * time.Second,
		EventWriteTimeout:   10 * time.Second,
		MaxConnsPerPeer:     64,
		MaxConnsOperator:    1024,
		MaxIngestReports:    api.MaxIngestReports,
		IngestBytesInFlight: 4 * api.MaxIngestBytes,
	}
}

// withDefaults fills every zero field from DefaultLimits.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	setDur := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	setDur(&l.ReadHeaderTimeout, d.ReadHeaderTimeout)
	setDur(&l.ReadTimeout, d.ReadTimeout)
	setDur(&l.WriteTimeout, d.WriteTimeout)
	setDur(&l.IdleTimeout, d.IdleTimeout)
	setDur(&l.EventWriteTimeout, d.EventWriteTimeout)
	if l.MaxConnsPerPeer <= 0 {
		l.MaxConnsPerPeer = d.MaxConnsPerPeer
	}
	if l.MaxConnsOperator <= 0 {
		l.MaxConnsOperator = d.MaxConnsOperator
	}
	if l.MaxIngestReports <= 0 {
		l.MaxIngestReports = d.MaxIngestReports
	}
	if l.IngestBytesInFlight <= 0 {
		l.IngestBytesInFlight = d.IngestBytesInFlight
	}
	// One body of the largest size must always fit, or it would wait forever.
	l.IngestBytesInFlight = max(l.IngestBytesInFlight, api.MaxIngestBytes)
	return l
}
