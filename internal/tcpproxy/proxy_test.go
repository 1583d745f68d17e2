package tcpproxy_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"

	"github.com/bot-bottle/bottlecap/internal/tcpproxy"
)

// echo is a line echo server counting the connections it accepted.
type echo struct {
	l        net.Listener
	accepted atomic.Int64
}

func startEcho(t *testing.T) *echo {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &echo{l: l}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			e.accepted.Add(1)
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	t.Cleanup(func() { l.Close() })
	return e
}

func startProxy(t *testing.T, target string) *tcpproxy.Proxy {
	t.Helper()
	p, err := tcpproxy.Start(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip sends a line and reads it back.
func roundTrip(c net.Conn, line string) (string, error) {
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return "", err
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	return got, err
}

func TestForwards(t *testing.T) {
	p := startProxy(t, startEcho(t).l.Addr().String())
	c := dial(t, p.Addr())
	if got, err := roundTrip(c, "hello"); err != nil || got != "hello\n" {
		t.Errorf("round trip %q, %v; want hello", got, err)
	}
}

func TestCutDropsOpenConnections(t *testing.T) {
	p := startProxy(t, startEcho(t).l.Addr().String())
	c := dial(t, p.Addr())
	if _, err := roundTrip(c, "before"); err != nil {
		t.Fatal(err)
	}
	p.Cut()
	if got, err := roundTrip(c, "after"); err == nil {
		t.Errorf("a connection open before the cut answered %q", got)
	}
}

func TestCutBlackholesNewConnectionsUntilHeal(t *testing.T) {
	e := startEcho(t)
	p := startProxy(t, e.l.Addr().String())
	p.Cut()
	c := dial(t, p.Addr()) // accepted: a blackhole, not a refusal
	if _, err := io.WriteString(c, "lost\n"); err != nil {
		t.Fatal(err)
	}
	p.Heal()
	// The held connection is closed at Heal having forwarded nothing: the
	// client reads EOF (or a reset), never its line back.
	got, err := io.ReadAll(c)
	if len(got) != 0 || (err != nil && !errors.Is(err, net.ErrClosed) && !isReset(err)) {
		t.Errorf("held connection read %q, %v; want nothing", got, err)
	}
	if n := e.accepted.Load(); n != 0 {
		t.Errorf("the target accepted %d connections during the cut, want 0", n)
	}
	after := dial(t, p.Addr())
	if got, err := roundTrip(after, "healed"); err != nil || got != "healed\n" {
		t.Errorf("after Heal: %q, %v; want healed", got, err)
	}
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op)
}

func TestCloseEndsEverything(t *testing.T) {
	p, err := tcpproxy.Start(startEcho(t).l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, p.Addr())
	if _, err := roundTrip(c, "x"); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := roundTrip(c, "y"); err == nil {
		t.Error("a connection survived Close")
	}
	if c2, err := net.Dial("tcp", p.Addr()); err == nil {
		c2.Close()
		t.Error("the proxy still accepts after Close")
	}
}
