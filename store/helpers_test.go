package store_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/store"
)

// openTemp opens a fresh ledger file in the test's temp dir.
func openTemp(t *testing.T) (*store.DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "bot-bottle.db")
	db, err := store.Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}

var baseTS = time.Date(2026, 11, 21, 20, 0, 0, 0, time.UTC)

// report builds a report whose counts derive from n, so sums are easy to
// predict.
func report(id, bottle, agent, provider string, n int64) budget.Report {
	u := budget.Usage{Input: n, CacheRead: 2 * n, CacheWrite: 3 * n, Output: 4 * n, Reasoning: n}
	return budget.Report{
		ID: id, Bottle: bottle, Agent: agent, Provider: provider,
		Host: "api.anthropic.com", Model: "claude-sonnet-4-5",
		Usage: u, Complete: true, TS: baseTS.Add(time.Duration(n) * time.Second),
		Counted: u.Total(),
	}
}

func mustAppend(t *testing.T, db *store.DB, reports ...budget.Report) []budget.AppendResult {
	t.Helper()
	res, err := db.AppendReports(context.Background(), reports)
	if err != nil {
		t.Fatalf("AppendReports: %v", err)
	}
	return res
}

func dupFlags(res []budget.AppendResult) string {
	s := ""
	for _, r := range res {
		s += fmt.Sprint(map[bool]string{true: "D", false: "."}[r.Duplicate])
	}
	return s
}
