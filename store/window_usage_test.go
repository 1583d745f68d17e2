package store_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/store"
)

func TestWindowUsageReadsTheWindowOnly(t *testing.T) {
	db, _ := openTemp(t)
	ctx := context.Background()
	mustAppend(t, db,
		at("before", "b1", "impl", "claude", -time.Nanosecond, 1000),
		at("first", "b1", "impl", "claude", 0, 10),
		at("later", "b1", "impl", "claude", 23*time.Hour, 20),
		at("codex", "b1", "impl", "codex", time.Hour, 5),
		at("other", "b2", "rev", "claude", 2*time.Hour, 7),
		at("next-day", "b1", "impl", "claude", 24*time.Hour, 99),
		// Reports a month on: a window with no end reads them, a
		// calendar one does not.
		at("month-on", "b2", "rev", "claude", 30*24*time.Hour, 3),
	)
	day, err := db.WindowUsage(ctx, baseTS, baseTS.Add(24*time.Hour), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"b1/impl/claude": 30, "b1/impl/codex": 5, "b2/rev/claude": 7}
	if got := sums(day); !reflect.DeepEqual(got, want) {
		t.Errorf("the day: %v, want %v", got, want)
	}
	for _, b := range day {
		if !b.Start.Equal(baseTS) {
			t.Errorf("%+v: want one bucket from the window's start", b)
		}
	}
	open, err := db.WindowUsage(ctx, baseTS.Add(12*time.Hour), time.Time{}, 12*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	want = map[string]int64{"b1/impl/claude": 119, "b2/rev/claude": 3}
	if got := sums(open); !reflect.DeepEqual(got, want) {
		t.Errorf("from noon on: %v, want %v", got, want)
	}
	if _, err := db.WindowUsage(ctx, time.Time{}, time.Time{}, time.Hour); err == nil {
		t.Error("a window with no start was read")
	}
}

func sums(bs []budget.UsageBucket) map[string]int64 {
	out := map[string]int64{}
	for _, b := range bs {
		out[b.Bottle+"/"+b.Agent+"/"+b.Provider] += b.Counted
	}
	return out
}

func TestWindowedRuntimeLimitsRoundTrip(t *testing.T) {
	db, _ := openTemp(t)
	ctx := context.Background()
	set, err := budget.ParseLimitSet("5M/day+50M/month+200M")
	if err != nil {
		t.Fatal(err)
	}
	if err := db.PutBudget(ctx, budget.ScopeGlobal, "-", budget.Limits{"claude": set, "codex": budget.Lifetime(7)}); err != nil {
		t.Fatal(err)
	}
	got, err := db.Budgets(ctx)
	if err != nil || len(got) != 1 {
		t.Fatalf("budgets %+v, %v", got, err)
	}
	if c, x := got[0].Limits["claude"].String(), got[0].Limits["codex"].String(); c != "200000000+5000000/day+50000000/month" || x != "7" {
		t.Errorf("read back claude=%s codex=%s", c, x)
	}
	bad := budget.LimitSet{{Tokens: 1, Window: budget.DayWindow}, {Tokens: 2, Window: budget.DayWindow}}
	if err := db.PutBudget(ctx, budget.ScopeGlobal, "-", budget.Limits{"claude": bad}); err == nil {
		t.Error("two limits for one window were stored")
	}
}

func TestWarnMarksPerWindow(t *testing.T) {
	db, _ := openTemp(t)
	ctx := context.Background()
	mark := func(m string, until time.Time) bool {
		t.Helper()
		first, err := db.MarkWarned(ctx, budget.ScopeBottle, "b1", "claude", m, until)
		if err != nil {
			t.Fatal(err)
		}
		return first
	}
	day1, day2 := baseTS.Add(4*time.Hour), baseTS.Add(28*time.Hour)
	if !mark("day@1", day1) || mark("day@1", day1) {
		t.Error("the first day's mark: want first once")
	}
	if !mark("day@2", day2) || !mark("", time.Time{}) {
		t.Error("the next day and the lifetime limit warn on marks of their own")
	}
	if err := db.ForgetWarned(ctx, day1); err != nil {
		t.Fatal(err)
	}
	if !mark("day@1", day1) {
		t.Error("a mark of a window that ended was kept")
	}
	if mark("day@2", day2) || mark("", time.Time{}) {
		t.Error("marks of a window not ended, or of a lifetime limit, were forgotten")
	}
}

// TestMigrationKeepsLimitsAndWarnMarks opens a ledger from before windows:
// its runtime limits read as lifetime limits, and a warning marked then
// is still marked (lifetime limits warn once, as they did).
func TestMigrationKeepsLimitsAndWarnMarks(t *testing.T) {
	ctx := context.Background()
	raw, path := ledgerBefore(t, "windows")
	for _, q := range []string{
		`INSERT INTO budgets (scope, id, provider, tokens) VALUES ('global', '-', 'claude', 5000000)`,
		`INSERT INTO warn_markers (scope, id, provider, warned_at) VALUES ('global', '-', 'claude', 1)`,
	} {
		if _, err := raw.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	raw.Close()

	db, err := store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got, err := db.Budgets(ctx)
	if err != nil || len(got) != 1 || got[0].Limits["claude"].String() != "5000000" {
		t.Errorf("budgets after migrating: %+v (%v), want the lifetime 5000000", got, err)
	}
	if first, err := db.MarkWarned(ctx, budget.ScopeGlobal, "-", "claude", "", time.Time{}); err != nil || first {
		t.Errorf("MarkWarned after migrating: first %v (%v), want the old mark kept", first, err)
	}
}
