package controller

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/bot-bottle/bottlecap/api"
)

// connLimiter caps the open connections of each peer, told apart by its
// credentials at accept (SO_PEERCRED): a container is one peer whatever
// uid it runs as (sidecars run as root), a host process is its uid. Root
// and the daemon's own uid on the host get a larger cap, so that a
// flooding sidecar can neither lock out other bottles' sidecars nor the
// operator. A connection past its peer's cap is answered 503 and closed at
// once, before any request is read.
type connLimiter struct {
	perPeer, operator int
	self              int // the daemon's uid
	log               *slog.Logger
	refused           func() // counts a refusal in the metrics

	mu       sync.Mutex
	open     map[string]int // peer key → open connections
	admitted map[net.Conn]admission
	warned   map[string]bool // peers refused since they were last under the cap
}

// admission is what the limiter learnt of an admitted connection's peer.
// The peer is established once, here, and the server takes it from here
// (peer): reading the credentials and /proc again per connection would
// cost the work twice and could give a second, different answer.
type admission struct {
	key  string
	peer Peer
	err  error
}

func newConnLimiter(lim Limits, log *slog.Logger, refused func()) *connLimiter {
	return &connLimiter{
		perPeer: lim.MaxConnsPerPeer, operator: lim.MaxConnsOperator, self: os.Getuid(),
		log: log, refused: refused,
		open: map[string]int{}, admitted: map[net.Conn]admission{}, warned: map[string]bool{},
	}
}

// limitedListener hands out only connections their peer's cap admits.
type limitedListener struct {
	net.Listener
	lim *connLimiter
}

// Accept returns the next admitted connection, refusing those over cap.
func (l limitedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.lim.admit(c) {
			return c, nil
		}
	}
}

// admit counts c against its peer, or refuses and closes it.
func (cl *connLimiter) admit(c net.Conn) bool {
	p, err := peerOf(c)
	key, limit := cl.identify(p, err)
	cl.mu.Lock()
	n := cl.open[key]
	if n < limit {
		cl.open[key] = n + 1
		cl.admitted[c] = admission{key, p, err}
		delete(cl.warned, key)
		cl.mu.Unlock()
		return true
	}
	first := !cl.warned[key]
	cl.warned[key] = true
	cl.mu.Unlock()
	if first {
		cl.log.Warn("refusing connections past the peer's cap", "peer", key, "open", n, "cap", limit)
	}
	cl.refused()
	refuse(c, fmt.Sprintf("too many connections from %s (%d open, the cap): close idle ones or reuse them; the daemon answers 503 until some close", key, n))
	return false
}

// identify names c's peer and its cap. A peer whose credentials cannot be
// read shares one bucket with every other such peer, and a peer whose
// origin is unknown never gets the operator's cap, at the ordinary cap.
func (cl *connLimiter) identify(p Peer, err error) (string, int) {
	switch {
	case err != nil:
		return "an unidentified peer", cl.perPeer
	case p.Container != "":
		return "container " + p.Container[:min(12, len(p.Container))], cl.perPeer
	case !p.Host:
		return "uid " + strconv.Itoa(p.UID) + " (origin unknown)", cl.perPeer
	case p.UID == 0 || p.UID == cl.self:
		return "uid " + strconv.Itoa(p.UID), cl.operator
	}
	return "uid " + strconv.Itoa(p.UID), cl.perPeer
}

// connState is http.Server's ConnState hook: a closed connection no longer
// counts against its peer.
func (cl *connLimiter) connState(c net.Conn, st http.ConnState) {
	if st != http.StateClosed && st != http.StateHijacked {
		return
	}
	cl.mu.Lock()
	defer cl.mu.Unlock()
	a, ok := cl.admitted[c]
	if !ok {
		return
	}
	delete(cl.admitted, c)
	if cl.open[a.key]--; cl.open[a.key] <= 0 {
		delete(cl.open, a.key)
	}
}

// peer is the peer established when c was admitted; a connection the
// limiter never saw (a listener without it) is established now.
func (cl *connLimiter) peer(c net.Conn) (Peer, error) {
	cl.mu.Lock()
	a, ok := cl.admitted[c]
	cl.mu.Unlock()
	if !ok {
		return peerOf(c)
	}
	return a.peer, a.err
}

// refuse answers a connection it will not serve with a 503 naming the
// reason, then closes it. The reply fits an empty socket buffer, so the
// write does not wait on the peer; the deadline is there in case it does.
func refuse(c net.Conn, msg string) {
	body, _ := json.Marshal(api.Error{Error: msg}) // a string always marshals
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	fmt.Fprintf(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
	c.Close()
}
