package simhost

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/client"
	"github.com/bot-bottle/bottlecap/internal/retry"
)

// Sidecar is b's simulated egress sidecar until ctx ends: before each
// request it asks the gate, as `bottlecap meter` does, and reports the
// response's usage as the provider's own JSON, which the daemon
// normalises. A denied bottle stops spending, as a real agent behind the
// meter would. speed divides the pace b.Every sets.
func (b Bottle) Sidecar(ctx context.Context, c *client.Client, speed float64) {
	for {
		jitter := 0.5 + rand.Float64()
		if retry.Sleep(ctx, time.Duration(float64(b.Every)*jitter/speed)) != nil {
			return
		}
		v, err := c.Verdict(ctx, client.VerdictQuery{Bottle: b.Slug, Agent: b.Agent, Provider: b.Provider})
		if err != nil || !v.Allowed {
			continue // denied (or the daemon is going away): no request, no usage
		}
		r := api.Report{Report: budget.Report{Bottle: b.Slug, Agent: b.Agent}, Format: "auto"}
		r.ID, r.Host, r.Raw = Response(b.Provider)
		if _, err := c.Ingest(ctx, []api.Report{r}); err != nil && ctx.Err() == nil {
			continue // the next response is reported all the same
		}
	}
}
