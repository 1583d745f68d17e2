package controller_test

import (
	"context"
	"database/sql"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	_ "modernc.org/sqlite"
)

func TestStatusCountsAndStore(t *testing.T) {
	d := startDaemon(t, nil, nil)
	d.register("b1", api.BottleRequest{Budget: amounts("claude", 1000)})
	d.ingest(report("m1", "b1", "", "claude", 10), report("m2", "b1", "", "claude", 20))
	if _, err := d.c.Act(context.Background(), "b1", api.ActionRequest{Action: "cutoff"}); err != nil {
		t.Fatal(err)
	}
	st, err := d.c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Version != "test" || st.Bottles != 1 || st.Reports != 2 || st.PendingActions != 1 || st.Socket != d.sock || st.Store == "" {
		t.Errorf("got %+v, want version test, 1 bottle, 2 reports, 1 pending action, the socket and store", st)
	}
	if st.Docker.Enabled {
		t.Errorf("got docker enabled without an engine")
	}
}

func TestMetricsInPrometheusFormat(t *testing.T) {
	d := startDaemon(t, nil, nil)
	d.register("b1", api.BottleRequest{Budget: amounts("claude", 1000)})
	d.ingest(report("m1", "b1", "", "claude", 10))
	d.ingest(report("m1", "b1", "", "claude", 10))
	d.verdict("b1", "", "claude")
	status, body := d.raw("GET", "/metrics", "", "")
	for _, want := range []string{
		`bottlecap_reports_total{result="accepted"} 1`,
		`bottlecap_reports_total{result="duplicate"} 1`,
		`bottlecap_verdicts_total{allowed="true"} 1`,
		`bottlecap_used_tokens{id="b1",provider="claude",scope="bottle",window="life"} 10`,
		`bottlecap_limit_tokens{id="b1",provider="claude",scope="bottle",window="life"} 1000`,
		`bottlecap_remaining_tokens{id="b1",provider="claude",scope="bottle",window="life"} 990`,
		`bottlecap_used_tokens{id="-",provider="claude",scope="global",window="life"} 10`,
		`bottlecap_bottles{state="active"} 1`,
		`bottlecap_tokens_total{agent="",bottle="b1",kind="input",model="unknown",provider="claude"} 10`,
		`bottlecap_ingest_seconds_count 2`,
		`bottlecap_commit_seconds_count 2`,
		`bottlecap_verdict_seconds_count 1`,
		`bottlecap_build_info{commit="unknown",goversion="` + runtime.Version() + `",version="test"} 1`,
		`go_goroutines `,
		`process_resident_memory_bytes `,
	} {
		if status != 200 || !strings.Contains(body, want) {
			t.Errorf("got %d, want a line %s in:\n%s", status, want, body)
		}
	}
}

// TestTokenCounters: each kind of a report's tokens is counted by bottle,
// agent, provider and model; past 64 model names the rest count as
// "other"; a forgotten bottle's series go.
func TestTokenCounters(t *testing.T) {
	d := startDaemon(t, nil, nil)
	d.register("b1", api.BottleRequest{Agent: "coder"})
	rep := report("t1", "b1", "", "claude", 0)
	rep.Model, rep.Usage = "claude-sonnet-4-5", budget.Usage{Input: 1, CacheRead: 20, CacheWrite: 300, Output: 4000, Reasoning: 50}
	d.ingest(rep)
	for i := range 70 {
		r := report(fmt.Sprintf("m%d", i), "b2", "a", "claude", 1)
		r.Model = fmt.Sprintf("model-%02d", i)
		d.ingest(r)
	}
	_, body := d.raw("GET", "/metrics", "", "")
	for _, want := range []string{
		`bottlecap_tokens_total{agent="coder",bottle="b1",kind="input",model="claude-sonnet-4-5",provider="claude"} 1`,
		`bottlecap_tokens_total{agent="coder",bottle="b1",kind="cache_read",model="claude-sonnet-4-5",provider="claude"} 20`,
		`bottlecap_tokens_total{agent="coder",bottle="b1",kind="cache_write",model="claude-sonnet-4-5",provider="claude"} 300`,
		`bottlecap_tokens_total{agent="coder",bottle="b1",kind="output",model="claude-sonnet-4-5",provider="claude"} 4000`,
		// 64 names: the sonnet and model-00 to model-62; the other 7 reports
		`bottlecap_tokens_total{agent="a",bottle="b2",kind="input",model="model-62",provider="claude"} 1`,
		`bottlecap_tokens_total{agent="a",bottle="b2",kind="input",model="other",provider="claude"} 7`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("want a line %s in:\n%s", want, body)
		}
	}
	if strings.Contains(body, `model="model-63"`) {
		t.Error("a 65th model name has a series of its own")
	}
	if err := d.c.DeleteBottle(context.Background(), "b1"); err != nil {
		t.Fatal(err)
	}
	if _, body := d.raw("GET", "/metrics", "", ""); strings.Contains(body, `bottle="b1"`) {
		t.Errorf("a forgotten bottle's series remain:\n%s", body)
	}
}

func TestEventsStreamChanges(t *testing.T) {
	d := startDaemon(t, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := d.c.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	d.register("b1", api.BottleRequest{})
	d.ingest(report("m1", "b1", "", "claude", 10))
	var got []string
	for e := range stream.C {
		got = append(got, e.Type+":"+e.Bottle)
		if e.Type == "usage" {
			break
		}
	}
	if want := "bottle:b1 audit:b1 usage:b1"; strings.Join(got, " ") != want {
		t.Errorf("got events %q, want %q", got, want)
	}
}

func TestAuditVerifyOverTheSocket(t *testing.T) {
	d := startDaemon(t, nil, nil)
	d.register("b1", api.BottleRequest{})
	d.register("b2", api.BottleRequest{})
	status, body := d.raw("GET", "/v1/audit/verify", "", "")
	if status != 200 || !strings.Contains(body, `"ok":true`) || !strings.Contains(body, `"entries":2`) {
		t.Errorf("got %d %s, want ok over 2 entries", status, body)
	}
	raw, err := sql.Open("sqlite", "file:"+d.db.Path()+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	for _, q := range []string{`DROP TRIGGER audit_no_update`, `UPDATE audit SET detail = 'nothing happened' WHERE seq = 1`} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatalf("tamper: %s: %v", q, err)
		}
	}
	status, body = d.raw("GET", "/v1/audit/verify", "", "")
	if status != 409 || !strings.Contains(body, `"ok":false`) || !strings.Contains(body, "1") {
		t.Errorf("after tampering got %d %s, want 409 naming entry 1", status, body)
	}
}
