package client_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/client"
	"github.com/bot-bottle/bottlecap/client/clienttest"
)

// sseBody is a stream with a comment, a CRLF event, a multi-line data field
// and an event whose type is only in the event: line.
const sseBody = ": hello\n\n" +
	"event: usage\r\ndata: {\"type\":\"usage\",\"bottle\":\"dev-1\",\"ts\":\"2026-11-21T20:00:00Z\",\"data\":{\"tokens\":730}}\r\n\r\n" +
	"id: 2\nevent: state\ndata: {\"bottle\":\"dev-1\",\n" +
	"data:  \"ts\":\"2026-11-21T20:00:01Z\"}\n\n"

func TestEvents(t *testing.T) {
	srv := clienttest.NewServer(t)
	srv.HandleFunc("GET /v1/events", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, sseBody)
	})
	s, err := client.New(srv.Socket).Events(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var got []api.Event
	for ev := range s.C {
		got = append(got, ev)
	}
	want := []api.Event{
		{Type: "usage", Bottle: "dev-1", TS: ts0, Data: json.RawMessage(`{"tokens":730}`)},
		{Type: "state", Bottle: "dev-1", TS: ts0.Add(time.Second)},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if err := s.Err(); err != io.EOF {
		t.Errorf("Err: got %v, want io.EOF (the daemon closed the stream)", err)
	}
}

func TestEventsEndOnCancel(t *testing.T) {
	srv := clienttest.NewServer(t)
	srv.HandleFunc("GET /v1/events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "event: usage\ndata: {\"type\":\"usage\"}\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	ctx, cancel := context.WithCancel(context.Background())
	s, err := client.New(srv.Socket).Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ev := <-s.C; ev.Type != "usage" {
		t.Errorf("got %+v", ev)
	}
	cancel()
	select {
	case _, ok := <-s.C:
		if ok {
			t.Error("got another event, want C closed")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("C not closed after cancel")
	}
	if err := s.Err(); err != nil {
		t.Errorf("Err after cancel: got %v, want nil", err)
	}
}

func TestEventsBadJSON(t *testing.T) {
	srv := clienttest.NewServer(t)
	srv.HandleFunc("GET /v1/events", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "event: usage\ndata: {nope\n\n")
	})
	s, err := client.New(srv.Socket).Events(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for range s.C {
	}
	if s.Err() == nil || s.Err() == io.EOF {
		t.Errorf("Err: got %v, want a decode error", s.Err())
	}
}

func TestEventsDaemonDown(t *testing.T) {
	_, err := client.New("/nonexistent/bc.sock", client.WithRetry(0)).Events(context.Background())
	if !errorsIs(err, client.ErrDaemonDown) {
		t.Errorf("got %v, want ErrDaemonDown", err)
	}
}
