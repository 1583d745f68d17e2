package controller_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/controller"
)

// openStalledSubscribers opens n event streams that never read a byte.
func openStalledSubscribers(t *testing.T, d *daemon, n int) []net.Conn {
	t.Helper()
	var conns []net.Conn
	for range n {
		c := dialSock(t, d.sock)
		fmt.Fprint(c, "GET /v1/events HTTP/1.1\r\nHost: bottlecap\r\n\r\n")
		conns = append(conns, c)
	}
	eventually(t, fmt.Sprintf("%d subscribers", n), func() bool { return d.metric("bottlecap_event_subscribers") == float64(n) })
	return conns
}

// ingestBurst sends batches of 100 reports, each an event for every
// subscriber: far more than a stalled subscriber's buffer and socket hold.
func (d *daemon) ingestBurst(prefix string, batches int) {
	d.t.Helper()
	for i := range batches {
		var batch []api.Report
		for j := range 100 {
			batch = append(batch, report(fmt.Sprintf("%s-%d-%d", prefix, i, j), "b1", "a", "claude", 1))
		}
		if reply := d.ingest(batch...); reply.Accepted != 100 {
			d.t.Fatalf("batch %d: got %+v, want 100 accepted", i, reply)
		}
	}
}

// Subscribers that stop reading are dropped and their connections closed
// after a write deadline, while ingest goes on acknowledging every report.
func TestStalledSubscribersAreDroppedAndIngestContinues(t *testing.T) {
	d := startLimited(t, controller.Limits{EventWriteTimeout: 100 * time.Millisecond})
	stalled := openStalledSubscribers(t, d, 5)
	d.ingestBurst("s", 50)
	eventually(t, "stalled subscribers dropped", func() bool {
		return d.metric("bottlecap_event_subscribers") == 0 && d.metric("bottlecap_event_subscribers_dropped_total") == 5
	})
	for i, c := range stalled {
		// What was queued in the socket, then the end: the daemon hung up.
		if got := closedByServer(t, c); !strings.Contains(got, "event: usage") {
			t.Errorf("subscriber %d: got %.200q, want the events sent before it was dropped", i, got)
		}
	}
	if v := d.verdict("b1", "a", "claude"); v.Used != 5000 {
		t.Errorf("got %d used, want all 5000 reports counted", v.Used)
	}
}

// A subscriber that keeps up stays subscribed through the same burst.
func TestReadingSubscriberIsNotDropped(t *testing.T) {
	d := startDaemon(t, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := d.c.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "subscribed", func() bool { return d.metric("bottlecap_event_subscribers") == 1 })
	got := make(chan int)
	go func() {
		n := 0
		for e := range stream.C {
			if e.Type == "usage" {
				if n++; n == 500 {
					break
				}
			}
		}
		got <- n
	}()
	d.ingestBurst("r", 5)
	if n := <-got; n != 500 {
		t.Errorf("got %d usage events, want 500", n)
	}
	if n := d.metric("bottlecap_event_subscribers_dropped_total"); n != 0 {
		t.Errorf("got %v dropped, want 0", n)
	}
}

// Shutdown does not wait for subscribers stuck writing: with a write
// deadline far past the grace period, Stop must still return before its
// context ends (it would return the context's error otherwise).
func TestShutdownDoesNotWaitForStalledSubscribers(t *testing.T) {
	d := startLimited(t, controller.Limits{EventWriteTimeout: time.Hour})
	openStalledSubscribers(t, d, 3)
	d.ingestBurst("s", 30) // their sockets fill: their writes block
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := d.Daemon.Daemon.Stop(ctx); err != nil {
		t.Errorf("stop: got %v, want it done before the grace period ends", err)
	}
	d.Daemon.Daemon = nil // stopped: the cleanup must not stop it again
}
