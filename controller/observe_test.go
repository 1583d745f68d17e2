package controller_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/api"
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
		`bottlecap_used_tokens{id="b1",provider="claude",scope="bottle"} 10`,
		`bottlecap_limit_tokens{id="b1",provider="claude",scope="bottle"} 1000`,
		`bottlecap_bottles{state="active"} 1`,
	} {
		if status != 200 || !strings.Contains(body, want) {
			t.Errorf("got %d, want a line %s in:\n%s", status, want, body)
		}
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
