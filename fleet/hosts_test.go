package fleet_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/fleet"
)

func TestClaimRefusesASecondLiveDaemon(t *testing.T) {
	db, _ := open(t)
	ctx := ctxT(t)
	if err := db.Claim(ctx, "box", "first"); err != nil {
		t.Fatal(err)
	}
	if err := db.Claim(ctx, "box", "first"); err != nil {
		t.Errorf("the holder claiming again: %v", err)
	}
	err := db.Claim(ctx, "box", "second")
	var ce *fleet.ClaimError
	if !errors.As(err, &ce) || !errors.Is(err, fleet.ErrHostClaimed) {
		t.Fatalf("a second daemon's claim: %v, want a *ClaimError", err)
	}
	if ce.Host != "box" || ce.Instance != "first" || ce.SeenAgo > fleet.HostTTL {
		t.Errorf("ClaimError %+v, want host box held by first, seen within the TTL", ce)
	}
	for _, want := range []string{"host box is already claimed by a live daemon (instance first, seen", "set fleet.host"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if err := db.Claim(ctx, "other-box", "second"); err != nil {
		t.Errorf("another name: %v", err)
	}
}

func TestClaimTakesOverASilentHostKeepingItsPosition(t *testing.T) {
	db, _ := open(t)
	ctx := ctxT(t)
	if err := db.Claim(ctx, "box", "old"); err != nil {
		t.Fatal(err)
	}
	if err := db.Ship(ctx, "box", "old", batchOf(1, 3, "claude", 10), 0); err != nil {
		t.Fatal(err)
	}
	silence(t, db, "box", fleet.HostTTL+time.Second)
	if err := db.Claim(ctx, "box", "new"); err != nil {
		t.Fatalf("claiming a host silent past the TTL: %v", err)
	}
	if got := scalar[int64](t, db, "SELECT shipped_seq FROM fleet_hosts WHERE host = 'box'"); got != 3 {
		t.Errorf("shipped_seq after the take-over %d, want 3", got)
	}
	if err := db.Heartbeat(ctx, "box", "old", 0); !errors.Is(err, fleet.ErrClaimLost) {
		t.Errorf("the old instance's heartbeat: %v, want ErrClaimLost", err)
	}
	if err := db.Ship(ctx, "box", "old", batchOf(4, 4, "claude", 10), 0); !errors.Is(err, fleet.ErrClaimLost) {
		t.Errorf("the old instance's shipment: %v, want ErrClaimLost", err)
	}
	if got := scalar[int](t, db, "SELECT count(*) FROM fleet_reports"); got != 3 {
		t.Errorf("reports %d after a refused shipment, want 3", got)
	}
}

// silence makes host look silent for ago.
func silence(t *testing.T, db *fleet.DB, host string, ago time.Duration) {
	t.Helper()
	_, err := db.Pool().Exec(ctxT(t), "UPDATE fleet_hosts SET last_seen = now() - make_interval(secs => $2) WHERE host = $1", host, ago.Seconds())
	if err != nil {
		t.Fatal(err)
	}
}
