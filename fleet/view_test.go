package fleet_test

import (
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
)

func TestReadViewSumsWindowsPerHost(t *testing.T) {
	db, _ := open(t)
	ctx := ctxT(t)
	yesterday := batchOf(1, 2, "claude", 100)
	for i := range yesterday {
		yesterday[i].TS = yesterday[i].TS.Add(-24 * time.Hour)
	}
	ships := map[string][]budget.SeqReport{
		"a": append(yesterday, batchOf(3, 5, "claude", 10)...), // today: 30, ever: 230
		"b": batchOf(1, 2, "codex", 7),
	}
	for host, batch := range ships {
		if err := db.Claim(ctx, host, host); err != nil {
			t.Fatal(err)
		}
		if err := db.Ship(ctx, host, host, batch, 1500*time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Claim(ctx, "idle", "idle"); err != nil {
		t.Fatal(err)
	}
	silence(t, db, "idle", time.Minute)
	day, _ := budget.ParseLimitSet("1M/day+5M")
	limits := budget.Limits{"claude": day, "codex": budget.LimitSet{{Tokens: 1, Window: budget.MonthWindow}}}
	now := shipTS.Add(time.Hour)
	v, err := db.ReadView(ctx, limits, time.UTC, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Hosts) != 3 || v.Hosts[0].Host != "a" || v.Hosts[1].Host != "b" || v.Hosts[2].Host != "idle" {
		t.Fatalf("hosts %+v, want a, b, idle", v.Hosts)
	}
	a, _ := v.Host("a")
	if a.Lifetime["claude"] != 230 || a.Window["claude"][budget.DayWindow] != 30 || a.ShippedSeq != 5 || a.Lag != 1500*time.Millisecond || !a.Live() {
		t.Errorf("host a: %+v; want claude 230 ever, 30 today, seq 5, lag 1.5s, live", a)
	}
	if _, ok := a.Window["claude"][budget.LifeWindow]; ok {
		t.Error("a Life window was summed; lifetime usage is Lifetime")
	}
	if got := a.Window["codex"][budget.MonthWindow]; got != 0 {
		t.Errorf("host a's codex month %d, want 0", got)
	}
	b, _ := v.Host("b")
	if b.Window["codex"][budget.MonthWindow] != 14 || b.Window["claude"][budget.DayWindow] != 0 || b.Lifetime["codex"] != 14 {
		t.Errorf("host b: %+v; want codex 14 this month and ever, claude 0 today", b)
	}
	if idle, _ := v.Host("idle"); idle.Live() || idle.SeenAgo < 59*time.Second {
		t.Errorf("a host silent for a minute: seen %v ago, live %v", idle.SeenAgo, idle.Live())
	}
	if _, ok := v.Host("nobody"); ok {
		t.Error("Host found a host the fleet does not have")
	}
	if !v.Refreshed.Equal(now) {
		t.Errorf("Refreshed %v, want %v", v.Refreshed, now)
	}
}
