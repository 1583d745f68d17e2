package enforcement_test

import (
	"context"
	"errors"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/enforcement"
)

func TestParseLabels(t *testing.T) {
	tests := []struct {
		name    string
		labels  map[string]string
		ok      bool
		want    enforcement.Discovered // Labels and Err not compared
		wantErr []string               // substrings of Err
	}{
		{"all labels", map[string]string{"bot-bottle.bottle": "impl-1", "bot-bottle.budget": "claude=1M, codex=500k",
			"bot-bottle.parent": "root-0", "bot-bottle.shutdown": "pause", "bot-bottle.agent": "implementer",
			"bot-bottle.rate": "claude=300k/min, codex=1M/min"}, true,
			enforcement.Discovered{Bottle: "impl-1", Parent: "root-0", Agent: "implementer", Shutdown: budget.Pause,
				Budget: budget.Limits{"claude": budget.Lifetime(1_000_000), "codex": budget.Lifetime(500_000)}, Rate: budget.Rates{"claude": 300_000, "codex": 1_000_000}}, nil},
		{"windows", map[string]string{"bot-bottle.bottle": "w", "bot-bottle.budget": "claude=5M/day+50M/month,codex=500k/5h"}, true,
			enforcement.Discovered{Bottle: "w", Budget: budget.Limits{
				"claude": {{Tokens: 5_000_000, Window: budget.DayWindow}, {Tokens: 50_000_000, Window: budget.MonthWindow}},
				"codex":  {{Tokens: 500_000, Window: budget.RollingWindow(5, 'h')}}}}, nil},
		{"bad windows", map[string]string{"bot-bottle.bottle": "w", "bot-bottle.budget": "claude=5M/fortnight,codex=1M/0h,pi=2M/day"}, true,
			enforcement.Discovered{Bottle: "w", Budget: budget.Limits{"pi": {{Tokens: 2_000_000, Window: budget.DayWindow}}}},
			[]string{"claude", `"fortnight" is not a window`, "codex", `"0h" is an empty rolling window`}},
		{"compose project", map[string]string{"com.docker.compose.project": "bot-bottle-abc12"}, true,
			enforcement.Discovered{Bottle: "abc12"}, nil},
		{"bottle label wins over project", map[string]string{"com.docker.compose.project": "bot-bottle-x", "bot-bottle.bottle": "y"}, true,
			enforcement.Discovered{Bottle: "y"}, nil},
		{"other project", map[string]string{"com.docker.compose.project": "web"}, false, enforcement.Discovered{}, nil},
		{"bare prefix", map[string]string{"com.docker.compose.project": "bot-bottle-"}, false, enforcement.Discovered{}, nil},
		{"bad labels", map[string]string{"bot-bottle.bottle": "b", "bot-bottle.budget": "claude=lots,codex=2k,=5,pi",
			"bot-bottle.shutdown": "explode", "bot-bottle.parent": "../x"}, true,
			enforcement.Discovered{Bottle: "b", Parent: "../x", Budget: budget.Limits{"codex": budget.Lifetime(2000)}},
			[]string{"claude", "explode", "bot-bottle.parent", `"pi"`, "provider"}},
		{"bad rates", map[string]string{"bot-bottle.bottle": "b", "bot-bottle.rate": "claude=300k,codex=1k/min,gemini=5k/h,pi"}, true,
			enforcement.Discovered{Bottle: "b", Rate: budget.Rates{"codex": 1000}},
			[]string{"bot-bottle.rate", "provider claude", "has no unit", "provider gemini", "per minute only", `"pi": want provider=tokens/min`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := enforcement.ParseLabels(tt.labels)
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v", ok, tt.ok)
			}
			if tt.wantErr == nil && got.Err != nil {
				t.Errorf("Err = %v, want nil", got.Err)
			}
			if tt.wantErr != nil && !errors.Is(got.Err, budget.ErrInvalid) {
				t.Errorf("Err = %v, want ErrInvalid", got.Err)
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(got.Err.Error(), s) {
					t.Errorf("Err = %v, want it to mention %s", got.Err, s)
				}
			}
			got.Labels, got.Err = nil, nil
			if !sameDiscovered(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func sameDiscovered(a, b enforcement.Discovered) bool {
	return a.Bottle == b.Bottle && a.Agent == b.Agent && a.Parent == b.Parent && a.Shutdown == b.Shutdown &&
		a.ContainerID == b.ContainerID && a.State == b.State && reflect.DeepEqual(a.Budget, b.Budget) && maps.Equal(a.Rate, b.Rate)
}

// TestWatchReconcilesAfterStreamError follows one event, loses the stream,
// and on re-subscribing finds by listing that both containers are gone.
func TestWatchReconcilesAfterStreamError(t *testing.T) {
	var mu sync.Mutex
	lists, subs := 0, 0
	bottleA := map[string]string{"bot-bottle.bottle": "a", "bot-bottle.budget": "claude=1M"}
	f := &fakeEngine{}
	f.ContainerListFn = func(context.Context, client.ContainerListOptions) (client.ContainerListResult, error) {
		mu.Lock()
		defer mu.Unlock()
		if lists++; lists > 1 {
			return client.ContainerListResult{}, nil
		}
		return client.ContainerListResult{Items: []container.Summary{
			{ID: "A", Names: []string{"/a"}, Labels: bottleA, State: container.StateRunning},
			{ID: "X", Labels: map[string]string{"com.docker.compose.project": "web"}, State: container.StateRunning},
		}}, nil
	}
	f.EventsFn = func(ctx context.Context, _ client.EventsListOptions) client.EventsResult {
		mu.Lock()
		subs++
		first := subs == 1
		mu.Unlock()
		msgs, errs := make(chan events.Message, 1), make(chan error, 1)
		if first {
			msgs <- events.Message{Type: events.ContainerEventType, Action: events.ActionStart, Actor: events.Actor{ID: "B",
				Attributes: map[string]string{"name": "b", "image": "x", "com.docker.compose.project": "bot-bottle-b"}}}
			go func() { time.Sleep(50 * time.Millisecond); errs <- errors.New("unexpected EOF") }()
		}
		return client.EventsResult{Messages: msgs, Err: errs}
	}
	got := make(chan enforcement.Discovered, 10)
	var streamErrs []error
	w := &enforcement.Watcher{Engine: f, Report: func(d enforcement.Discovered) { got <- d },
		Sleep:   func(ctx context.Context, _ time.Duration) error { return ctx.Err() },
		OnError: func(err error) { streamErrs = append(streamErrs, err) }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()

	var seen []string
	for range 4 {
		select {
		case d := <-got:
			seen = append(seen, d.ContainerID+" "+d.Bottle+" "+string(d.State))
		case <-time.After(5 * time.Second):
			t.Fatalf("reports so far %q", seen)
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
	slices.Sort(seen[2:]) // the removals come in map order
	if want := []string{"A a running", "B b running", "A a removed", "B b removed"}; !slices.Equal(seen, want) {
		t.Errorf("reports = %q, want %q", seen, want)
	}
	if len(streamErrs) != 1 || !enforcement.Retryable(streamErrs[0]) {
		t.Errorf("stream errors = %v, want one retryable", streamErrs)
	}
}
