package fleet_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
)

var shipTS = time.Date(2026, 3, 18, 10, 0, 0, 0, time.UTC)

// batchOf is reports seq from..to of provider, each counting n tokens.
func batchOf(from, to int64, provider string, n int64) []budget.SeqReport {
	var b []budget.SeqReport
	for seq := from; seq <= to; seq++ {
		b = append(b, budget.SeqReport{Seq: seq, Report: budget.Report{
			ID: fmt.Sprintf("r%d", seq), Bottle: "b1", Agent: "a", Provider: provider, Host: "api.example.com", Model: "m",
			Usage: budget.Usage{Input: n}, Complete: true, TS: shipTS.Add(time.Duration(seq) * time.Second), Counted: n,
		}})
	}
	return b
}

func TestShipIsIdempotent(t *testing.T) {
	db, _ := open(t)
	ctx := ctxT(t)
	if err := db.Claim(ctx, "box", "i1"); err != nil {
		t.Fatal(err)
	}
	first := append(batchOf(1, 4, "claude", 10), batchOf(5, 6, "codex", 7)...)
	for range 2 { // a replay after a crash between the commit and the cursor
		if err := db.Ship(ctx, "box", "i1", first, 0); err != nil {
			t.Fatal(err)
		}
	}
	overlap := batchOf(3, 8, "claude", 10) // r3..r6 shipped already (r5, r6 as codex)
	if err := db.Ship(ctx, "box", "i1", overlap, 0); err != nil {
		t.Fatal(err)
	}
	if got := scalar[int](t, db, "SELECT count(*) FROM fleet_reports WHERE host = 'box'"); got != 8 {
		t.Errorf("reports %d, want 8", got)
	}
	for provider, want := range map[string]int64{"claude": 60, "codex": 14} {
		if got := scalar[int64](t, db, "SELECT shipped FROM fleet_host_usage WHERE host = 'box' AND provider = $1", provider); got != want {
			t.Errorf("%s shipped %d, want %d", provider, got, want)
		}
		sum := scalar[int64](t, db, "SELECT sum(counted)::bigint FROM fleet_reports WHERE host = 'box' AND provider = $1", provider)
		if sum != want {
			t.Errorf("%s: the reports sum to %d, the host usage says %d", provider, sum, want)
		}
	}
	if got := scalar[int64](t, db, "SELECT shipped_seq FROM fleet_hosts WHERE host = 'box'"); got != 8 {
		t.Errorf("shipped_seq %d, want 8", got)
	}
	r := batchOf(2, 2, "claude", 10)[0]
	var ts, input int64
	var upstream string
	if err := db.Pool().QueryRow(ctx, "SELECT ts, input, upstream FROM fleet_reports WHERE host = 'box' AND id = 'r2'").Scan(&ts, &input, &upstream); err != nil {
		t.Fatal(err)
	}
	if ts != r.TS.UnixNano() || input != 10 || upstream != "api.example.com" {
		t.Errorf("r2 stored with ts %d input %d upstream %q, want %d 10 api.example.com", ts, input, upstream, r.TS.UnixNano())
	}
}

func TestHostsShipTheSameIDsApart(t *testing.T) {
	db, _ := open(t)
	ctx := ctxT(t)
	for _, host := range []string{"a", "b"} {
		if err := db.Claim(ctx, host, host); err != nil {
			t.Fatal(err)
		}
		if err := db.Ship(ctx, host, host, batchOf(1, 3, "claude", 5), 0); err != nil {
			t.Fatal(err)
		}
	}
	if got := scalar[int64](t, db, "SELECT sum(shipped)::bigint FROM fleet_host_usage"); got != 30 {
		t.Errorf("fleet usage %d, want 30 (ids are per host)", got)
	}
}
