package meter

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Meter is a started metering proxy: its listener and HTTP server, the
// Proxy, and the Proxy's report queue and spool. `bottlecap meter` and
// tests start one with Start and take it down with Stop.
type Meter struct {
	// Proxy is the handler being served, for Pending and tests.
	Proxy *Proxy

	drain    time.Duration
	listener net.Listener
	srv      *http.Server
	served   chan error
}

// Start builds the proxy (replaying the spool, when cfg.SpoolPath names
// one, and dialling cfg.Socket when cfg.Daemon is nil), listens on
// cfg.Listen and serves.
func Start(ctx context.Context, cfg Config) (*Meter, error) {
	p, err := New(cfg)
	if err != nil {
		return nil, err
	}
	l, err := (&net.ListenConfig{}).Listen(ctx, "tcp", cfg.Listen)
	if err != nil {
		p.Close(cancelled()) // nothing was served; a replayed spool is kept for the next start
		return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	m := &Meter{
		Proxy: p, drain: p.cfg.Drain, listener: l, served: make(chan error, 1),
		srv: &http.Server{Handler: p, ReadHeaderTimeout: 30 * time.Second},
	}
	go func() { m.served <- m.srv.Serve(l) }()
	return m, nil
}

// Addr is the address the meter listens on (the port, when Listen asked
// for port 0).
func (m *Meter) Addr() net.Addr { return m.listener.Addr() }

// Served delivers the error that ended serving, if it ends before Stop.
func (m *Meter) Served() <-chan error { return m.served }

// Stop stops taking requests and lets those in flight finish until ctx
// ends (requests still running then are cut off, which is not an error),
// then gives the report queue up to Config.Drain to deliver what it holds;
// what is left stays in the spool, when there is one, and is named in the
// error.
func (m *Meter) Stop(ctx context.Context) error {
	err := m.srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = nil
	}
	dctx, cancel := context.WithTimeout(context.Background(), m.drain)
	defer cancel()
	if cerr := m.Proxy.Close(dctx); cerr != nil && err == nil {
		err = cerr
	}
	return err
}

// cancelled is a context that has already ended: Close then keeps what
// the queue holds instead of waiting to deliver it.
func cancelled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}
