package meter_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/client"
	"github.com/bot-bottle/bottlecap/meter"
)

// countingDaemon counts the gate questions asked of a real daemon.
type countingDaemon struct {
	meter.Daemon
	verdicts atomic.Int64
}

func (c *countingDaemon) Verdict(ctx context.Context, q client.VerdictQuery) (budget.Verdict, error) {
	c.verdicts.Add(1)
	return c.Daemon.Verdict(ctx, q)
}

// BottleEvents keeps the meter's watch of the bottle's state from
// subscribing, so that the verdict it asks once subscribed is not counted
// among the gate's questions.
func (c *countingDaemon) BottleEvents(context.Context, string) (*client.EventStream, error) {
	return nil, errors.New("the bottle's events are not watched in this test")
}

// TestGateCacheEndsWhenAReportExhaustsTheBudget: in naive mode allowed
// answers are reused (one question for two requests), and the
// acknowledgement of a report that crosses the budget ends the reuse at
// once, however long the cache is.
func TestGateCacheEndsWhenAReportExhaustsTheBudget(t *testing.T) {
	d := startDaemon(t)
	d.register("cache-1", budget.Limits{"codex": budget.Lifetime(100)})
	tokens := atomic.Int64{}
	tokens.Store(1)
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"id":"chatcmpl-`+r.Header.Get("X-N")+`","object":"chat.completion","usage":{"prompt_tokens":`+
			strconv.FormatInt(tokens.Load(), 10)+`,"completion_tokens":0}}`)
	})
	counter := &countingDaemon{Daemon: client.New(d.Sock, client.WithRetry(0))}
	p, srv := meterFor(t, d.Sock, "cache-1", up.URL, func(c *meter.Config) { c.Daemon = counter; c.GateCache = time.Hour; c.Naive = true })
	send := func(n string) int {
		req, _ := http.NewRequest("POST", srv.URL+"/v1/chat/completions", nil)
		req.Header.Set("X-N", n)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			// The client may have the whole body before the meter queues
			// the report: wait for it in the ledger, then for the ack.
			want, _ := strconv.Atoi(n)
			eventually(t, "the report is acknowledged", func() bool { return len(d.reports("cache-1")) == want && p.Pending() == 0 })
		}
		return resp.StatusCode
	}
	if a, b := send("1"), send("2"); a != 200 || b != 200 || counter.verdicts.Load() != 1 {
		t.Fatalf("got %d, %d with %d gate questions; want 200, 200 with 1", a, b, counter.verdicts.Load())
	}
	tokens.Store(500)
	if got := send("3"); got != 200 {
		t.Fatalf("got %d, want 200 (the budget was not crossed yet)", got)
	}
	if got := send("4"); got != http.StatusTooManyRequests {
		t.Errorf("got %d after a report crossed the budget, want 429", got)
	}
}
