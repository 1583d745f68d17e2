package controller

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"golang.org/x/sync/semaphore"
)

// Ingest bodies are admitted by their announced size (a chunked one counts
// as the largest) until IngestBytesInFlight is taken; the next one waits
// until a release, or gives up with its request.
func TestIngestBytesInFlightAreBounded(t *testing.T) {
	lim := Limits{IngestBytesInFlight: 2 * api.MaxIngestBytes}.withDefaults()
	s := &Server{limits: lim, ingestBytes: semaphore.NewWeighted(lim.IngestBytesInFlight)}
	req := func(ctx context.Context, n int64) *http.Request {
		r := httptest.NewRequestWithContext(ctx, "POST", "/v1/usage", http.NoBody)
		r.ContentLength = n
		return r
	}
	release1, err := s.admitIngest(req(context.Background(), api.MaxIngestBytes))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.admitIngest(req(context.Background(), -1)); err != nil {
		t.Fatalf("chunked body: %v", err)
	}
	if s.ingestBytes.TryAcquire(1) {
		t.Fatal("a full-size and a chunked body in flight: got room for one byte more, want none")
	}
	ctx, cancel := context.WithCancel(context.Background())
	waited := make(chan error)
	go func() {
		_, err := s.admitIngest(req(ctx, 10))
		waited <- err
	}()
	cancel()
	if err := <-waited; !errors.Is(err, budget.ErrUnavailable) {
		t.Errorf("third body with all bytes taken, request cancelled: got %v, want unavailable", err)
	}
	release1()
	if _, err := s.admitIngest(req(context.Background(), 10)); err != nil {
		t.Errorf("after a release: got %v, want admitted", err)
	}
	if _, err := s.admitIngest(req(context.Background(), api.MaxIngestBytes+1)); statusOf(err) != http.StatusRequestEntityTooLarge {
		t.Errorf("announced over the cap: got %v, want 413 before reading", err)
	}
}

func TestLimitsZeroFieldsTakeDefaults(t *testing.T) {
	got := Limits{MaxConnsPerPeer: 3}.withDefaults()
	want := DefaultLimits()
	want.MaxConnsPerPeer = 3
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}
