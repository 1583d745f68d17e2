// Package tcpproxy is a TCP proxy a test controls, to put a network
// partition between a daemon and Postgres: Cut drops the connections going
// through it and blackholes new ones (accepted, never answered, as when a
// route disappears), Heal lets new connections through again.
package tcpproxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
)

// Proxy forwards connections from its own address on 127.0.0.1 to a target.
type Proxy struct {
	target string
	l      net.Listener
	wg     sync.WaitGroup

	mu     sync.Mutex
	cut    bool
	closed bool
	conns  map[net.Conn]struct{} // every open connection, both sides, forwarded or held
}

// Start listens on a free port of 127.0.0.1 and forwards to target
// (host:port). Close stops it.
func Start(target string) (*Proxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("tcpproxy: %w", err)
	}
	p := &Proxy{target: target, l: l, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is where clients connect, host:port.
func (p *Proxy) Addr() string { return p.l.Addr().String() }

// Cut partitions: every open connection is closed, and new ones are
// accepted but get no byte and no answer until Heal or Close.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	p.closeAllLocked()
}

// Heal ends the partition: the connections held while cut are closed
// (their clients see an error and retry), new ones are forwarded.
func (p *Proxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut {
		p.closeAllLocked()
	}
	p.cut = false
}

// Close stops listening, closes every connection and waits for the
// proxy's goroutines.
func (p *Proxy) Close() error {
	err := p.l.Close()
	p.mu.Lock()
	p.closed = true
	p.closeAllLocked()
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

func (p *Proxy) closeAllLocked() {
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

// track records c as open, or closes it at once if the proxy is closed.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) forget(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *Proxy) isCut() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cut
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		if !p.track(c) {
			continue
		}
		if p.isCut() {
			continue // held: nothing read, nothing answered, closed at Heal
		}
		p.wg.Add(1)
		go p.forward(c)
	}
}

// forward dials the target for client and copies both ways until either
// side closes (or Cut closes both).
func (p *Proxy) forward(client net.Conn) {
	defer p.wg.Done()
	defer p.forget(client)
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	if !p.track(server) {
		return
	}
	defer p.forget(server)
	done := make(chan struct{}, 2)
	pump := func(dst, src net.Conn) {
		io.Copy(dst, src)
		done <- struct{}{}
	}
	go pump(server, client)
	go pump(client, server)
	<-done
	// One side ended: close both so the other pump ends too.
	client.Close()
	server.Close()
	<-done
}
