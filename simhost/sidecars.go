package simhost

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/client"
	"github.com/bot-bottle/bottlecap/internal/retry"
	"github.com/bot-bottle/bottlecap/store"
)

// Sidecars are the running sidecars of Bottles, reporting to one daemon.
type Sidecars struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// StartSidecars registers Bottles with the daemon on sock (those marked
// Register) and starts one Sidecar per bottle, speed times faster than
// real agents (> 0). They run until Stop or until ctx ends.
func StartSidecars(ctx context.Context, sock string, speed float64) (*Sidecars, error) {
	if speed <= 0 {
		return nil, fmt.Errorf("simulated sidecars: speed %v, want > 0", speed)
	}
	c := client.New(sock, client.WithRetry(5*time.Second))
	for _, b := range Bottles {
		if !b.Register {
			continue
		}
		req := api.BottleRequest{Agent: b.Agent, Name: b.Agent, Parent: b.Parent, Budget: b.Budget, Shutdown: b.Shutdown}
		if _, err := c.PutBottle(ctx, b.Slug, req); err != nil {
			c.Close()
			return nil, fmt.Errorf("register %s: %w", b.Slug, err)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &Sidecars{cancel: cancel}
	for _, b := range Bottles {
		s.wg.Add(1)
		go func() { defer s.wg.Done(); b.Sidecar(ctx, c, speed) }()
	}
	go func() { s.wg.Wait(); c.Close() }()
	return s, nil
}

// Stop ends the sidecars and waits for them.
func (s *Sidecars) Stop() {
	s.cancel()
	s.wg.Wait()
}

// Tail prints db's audit log as it grows until ctx ends or for duration:
// what a simulated host shows without the dashboard.
func Tail(ctx context.Context, db *store.DB, w io.Writer, duration time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, duration)
	defer cancel()
	var last int64
	for {
		entries, err := db.Audit(context.Background(), "", 200)
		if err != nil {
			return err
		}
		for i := len(entries) - 1; i >= 0; i-- { // newest first
			if e := entries[i]; e.Seq > last {
				fmt.Fprintf(w, "%s  %-14s %-18s %s\n", e.TS.Local().Format("15:04:05"), e.Kind, e.Bottle, e.Detail)
				last = e.Seq
			}
		}
		if retry.Sleep(ctx, 200*time.Millisecond) != nil {
			return nil
		}
	}
}
