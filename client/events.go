package client

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/bot-bottle/bottlecap/api"
)

// maxEventLine caps one line of the event stream.
const maxEventLine = 1 << 20

// EventStream is a live subscription to GET /v1/events. Receive from C until
// it is closed, then Err says why it ended.
type EventStream struct {
	// C delivers events in order. It is closed when the stream ends: the
	// context was cancelled, Close was called, or the daemon went away.
	C <-chan api.Event

	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// Err is nil while the stream runs and when the caller ended it (context
// cancelled or Close); otherwise why it ended: io.EOF when the daemon closed
// the stream (it is shutting down: reconnect), or a read or decode error.
func (s *EventStream) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

// Close ends the stream and waits until C is closed.
func (s *EventStream) Close() error {
	s.cancel()
	<-s.done
	return nil
}

// Events subscribes to the daemon's change events, so a dashboard updates
// without polling. Connecting is retried like any read; once connected the
// stream runs until ctx ends, Close is called, or the daemon closes it.
func (c *Client) Events(ctx context.Context) (*EventStream, error) {
	return c.events(ctx, request{method: http.MethodGet, path: path("events")})
}

// BottleEvents subscribes to the events of one bottle only (its state
// changes, say): what a sidecar that is not an operator may watch, for
// its own bottle.
func (c *Client) BottleEvents(ctx context.Context, slug string) (*EventStream, error) {
	return c.events(ctx, request{method: http.MethodGet, path: path("events"), query: url.Values{"bottle": {slug}}})
}

func (c *Client) events(ctx context.Context, r request) (*EventStream, error) {
	ctx, cancel := context.WithCancel(ctx)
	resp, err := c.send(ctx, c.stream, r)
	if err != nil {
		cancel()
		return nil, err
	}
	ch := make(chan api.Event)
	s := &EventStream{C: ch, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer resp.Body.Close()
		err := readEvents(ctx, resp.Body, ch)
		if ctx.Err() != nil {
			err = nil // the caller ended it
		}
		s.err = err
		close(s.done)
		close(ch)
	}()
	return s, nil
}

// readEvents parses server-sent events from r and delivers each to ch until
// r ends (io.EOF) or ctx is done. Comments (":" lines, used as heartbeats),
// id: and retry: fields are ignored; several data: lines are joined by "\n".
func readEvents(ctx context.Context, r io.Reader, ch chan<- api.Event) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxEventLine)
	var typ string
	var data []string
	for sc.Scan() {
		line := sc.Text()
		if line != "" {
			typ, data = sseField(line, typ, data)
			continue
		}
		if len(data) > 0 {
			if err := deliver(ctx, ch, typ, strings.Join(data, "\n")); err != nil {
				return err
			}
		}
		typ, data = "", nil
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read events: %w", err)
	}
	return io.EOF
}

// sseField applies one non-empty line to the event being assembled.
func sseField(line, typ string, data []string) (string, []string) {
	name, value, _ := strings.Cut(line, ":")
	value = strings.TrimPrefix(value, " ")
	switch name {
	case "event":
		typ = value
	case "data":
		data = append(data, value)
	}
	return typ, data
}

// deliver decodes one event and sends it, unless ctx ends first. The
// event: field names the type when the JSON does not.
func deliver(ctx context.Context, ch chan<- api.Event, typ, data string) error {
	var ev api.Event
	if err := json.Unmarshal([]byte(data), &ev); err != nil {
		return fmt.Errorf("decode %s event: %w", typ, err)
	}
	if ev.Type == "" {
		ev.Type = typ
	}
	select {
	case ch <- ev:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
