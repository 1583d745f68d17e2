package tui

import (
	"context"
	"time"

	"github.com/bot-bottle/bottlecap/store"
)

// BucketQuerier is the store's windowed usage query; *store.DB, including
// one opened with store.OpenReadOnly, satisfies it.
type BucketQuerier interface {
	UsageBuckets(ctx context.Context, since time.Time, step time.Duration) ([]store.UsageBucket, error)
}

var _ BucketQuerier = (*store.DB)(nil)

// StoreWindows is the UsageWindows the real dashboard uses: burn rates and
// sparklines read from the ledger's time index, so they are right from the
// first frame instead of filling in as a Sampler watches the totals grow.
type StoreWindows struct {
	q BucketQuerier
}

var _ UsageWindows = StoreWindows{}

// NewStoreWindows adapts the store's query to the dashboard.
func NewStoreWindows(q BucketQuerier) StoreWindows { return StoreWindows{q: q} }

// UsageBuckets runs the store's query and converts its rows.
func (w StoreWindows) UsageBuckets(ctx context.Context, since time.Time, step time.Duration) ([]UsageBucket, error) {
	rows, err := w.q.UsageBuckets(ctx, since, step)
	if err != nil {
		return nil, err
	}
	out := make([]UsageBucket, len(rows))
	for i, r := range rows {
		out[i] = UsageBucket{Bottle: r.Bottle, Agent: r.Agent, Provider: r.Provider, Start: r.Start, Counted: r.Counted}
	}
	return out, nil
}
