package tui_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/store"
	"github.com/bot-bottle/bottlecap/tui"
)

// The dashboard reads the store opened read-only through its own
// interfaces.
var (
	_ tui.Reader       = (*store.DB)(nil)
	_ tui.UsageWindows = (*store.DB)(nil)
)

// TestStoreWindowsBurnFromFirstLoad: with the store's windowed query the
// burn rate and the sparkline are there on the first load; the sampler
// would need two loads to see any growth.
func TestStoreWindowsBurnFromFirstLoad(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "bot-bottle.db")
	w, err := store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	seed(t, w) // 800k in child-b, reported just now
	now := time.Now()
	appendReport(t, w, "old", "child-b", 90_000, now.Add(-2*time.Hour)) // out of every window
	r, err := store.OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	src := tui.NewStoreSource(r, filepath.Join(t.TempDir(), "none.yml"), r,
		func() time.Time { return now.Add(time.Second) })
	snap, err := src.Load(ctx, "child-b")
	if err != nil {
		t.Fatal(err)
	}
	row, _ := snap.Row("child-b")
	if row.Burn != 160_000 { // 800k over the five-minute window
		t.Errorf("child-b burn = %v, want 160000 tokens/min", row.Burn)
	}
	if parent, _ := snap.Row("root-a"); parent.Burn != 160_000 {
		t.Errorf("root-a burn = %v, want its child's 160000 tokens/min", parent.Burn)
	}
	series := snap.Detail.Series
	if got := series[len(series)-1]; got != 800_000 {
		t.Errorf("last sparkline bucket = %d, want 800000 (series %v)", got, series)
	}
}
