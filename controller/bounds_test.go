package controller_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/client"
	"github.com/bot-bottle/bottlecap/controller"
	bcdaemon "github.com/bot-bottle/bottlecap/daemon"
	"github.com/bot-bottle/bottlecap/daemon/daemontest"
	"github.com/bot-bottle/bottlecap/store"
)

// globalBudget is the default settings with a global claude budget.
func globalBudget(tokens int64) *budget.Settings {
	s := budget.DefaultSettings()
	s.Budget = budget.Limits{"claude": budget.Lifetime(tokens)}
	return s
}

// post sends one report body and returns the status and reply.
func (d *daemon) post(body string) (int, string) {
	d.t.Helper()
	return d.raw("POST", "/v1/usage", "", body)
}

// wantNothingChanged checks that a refused request stored no report and
// registered no bottle.
func (d *daemon) wantNothingChanged(why string) {
	d.t.Helper()
	ctx := context.Background()
	totals, err := d.db.Totals(ctx)
	if err != nil || len(totals) != 0 {
		d.t.Errorf("%s: totals %+v (%v), want nothing stored", why, totals, err)
	}
	bottles, err := d.db.Bottles(ctx)
	if err != nil || len(bottles) != 0 {
		d.t.Errorf("%s: bottles %+v (%v), want none registered", why, bottles, err)
	}
}

// TestIngestTokenFieldBounds sends every token field at its bound (stored)
// and over it (400 naming the field, nothing stored, no bottle registered).
func TestIngestTokenFieldBounds(t *testing.T) {
	fields := []string{"input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens", "reasoning_tokens"}
	for _, f := range fields {
		t.Run(f, func(t *testing.T) {
			d := startDaemon(t, nil, nil)
			for _, n := range []string{fmt.Sprint(budget.MaxFieldTokens + 1), "9223372036854774784", "9000000000000000000"} {
				status, body := d.post(`{"id":"m","bottle":"over","provider":"claude","` + f + `":` + n + `}`)
				if status != 400 || !strings.Contains(body, f) || strings.Contains(body, "counted_tokens") {
					t.Errorf("%s=%s: got %d %s, want 400 naming %s", f, n, status, body, f)
				}
				d.wantNothingChanged(f + " over the bound")
			}
			status, body := d.post(fmt.Sprintf(`{"id":"m","bottle":"at","provider":"claude","%s":%d}`, f, budget.MaxFieldTokens))
			if status != 200 {
				t.Errorf("%s at the bound: got %d %s, want 200", f, status, body)
			}
		})
	}
}

// TestIngestWrapReproduction is the reproduction: 1,500 of 2,000
// used, then a report of 9223372036854774784 input tokens. It is refused
// (naming input_tokens) without registering its bottle, the gate still
// says 1,500 used; a report at the bound then crosses the budget: a
// journaled action and a denial, not a wrapped "allowed".
func TestIngestWrapReproduction(t *testing.T) {
	d := startDaemon(t, globalBudget(2000), nil)
	d.ingest(report("m1", "b1", "a", "claude", 1500))
	status, body := d.post(`{"id":"m2","bottle":"b2","agent":"a","provider":"claude","input_tokens":9223372036854774784}`)
	if status != 400 || !strings.Contains(body, "input_tokens") {
		t.Fatalf("got %d %s, want 400 naming input_tokens", status, body)
	}
	if _, err := d.c.Bottle(context.Background(), "b2"); !errors.Is(err, budget.ErrNotFound) {
		t.Errorf("bottle b2 after a refused report: %v, want not found", err)
	}
	if v := d.verdict("b1", "a", "claude"); !v.Allowed || v.Used != 1500 {
		t.Errorf("after the refused report: %+v, want allowed with 1500 used", v)
	}
	d.ingest(report("m3", "b1", "a", "claude", budget.MaxFieldTokens))
	v := d.verdict("b1", "a", "claude")
	if v.Allowed || v.Used != 1500+budget.MaxFieldTokens || v.Remaining != 0 {
		t.Errorf("after a report at the bound: %+v, want denied with %d used", v, 1500+budget.MaxFieldTokens)
	}
	if acts := d.actions("pending"); len(acts) != 1 || acts[0].Bottle != "b1" {
		t.Errorf("pending actions %+v, want the crossing journaled against b1", acts)
	}
}

// TestIngestReasoningOverflowAndRestart: two reports of 9e18 reasoning
// tokens (a field nothing budgets) used to overflow the ledger's totals
// into a REAL and stop the daemon from starting. Both are refused, and the
// daemon restarts and counts on.
func TestIngestReasoningOverflowAndRestart(t *testing.T) {
	d := startDaemon(t, nil, nil)
	d.ingest(report("m0", "b1", "a", "claude", 10))
	for _, id := range []string{"r1", "r2"} {
		status, body := d.post(`{"id":"` + id + `","bottle":"b1","agent":"a","provider":"claude","reasoning_tokens":9000000000000000000}`)
		if status != 400 || !strings.Contains(body, "reasoning_tokens") {
			t.Errorf("%s: got %d %s, want 400 naming reasoning_tokens", id, status, body)
		}
	}
	d.Stop()
	d.Restart()
	d.c = d.Client
	d.db = d.DB
	d.ingest(report("m1", "b1", "a", "claude", 5))
	if v := d.verdict("b1", "a", "claude"); v.Used != 15 {
		t.Errorf("after restart used %d, want 15", v.Used)
	}
}

// TestStartsOnLedgerWithOutOfRangeTotals writes, by direct SQL, the rows
// an older daemon left behind (a REAL total after an overflow, a wrapped
// negative one) and starts the daemon on them: it starts, reads the
// totals clamped, and refuses a report that would overflow the saturated
// counter, naming the client's fields.
func TestStartsOnLedgerWithOutOfRangeTotals(t *testing.T) {
	d := startDaemon(t, globalBudget(2000), nil)
	d.Stop()
	raw, err := sql.Open("sqlite", filepath.Join(d.dir, "bot-bottle.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO totals (bottle, agent, provider, counted, reasoning, reports) VALUES ('big', 'a', 'claude', 1.8446744073709552e19, 1.8e19, 2)`,
		`INSERT INTO totals (bottle, agent, provider, counted, input, reports) VALUES ('neg', 'a', 'codex', -9223372036853775332, -5, 1)`,
	} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	raw.Close()
	d.Restart()
	d.c, d.db = d.Client, d.DB
	if v := d.verdict("big", "a", "claude"); v.Allowed || v.Used != budget.MaxCounted {
		t.Errorf("REAL total: %+v, want denied with used clamped to %d", v, budget.MaxCounted)
	}
	if v := d.verdict("neg", "a", "codex"); v.Used != 0 {
		t.Errorf("negative total: used %d, want 0", v.Used)
	}
	status, body := d.post(`{"id":"m9","bottle":"other","agent":"a","provider":"claude","output_tokens":10}`)
	if status != 400 || !strings.Contains(body, "output_tokens") || strings.Contains(body, "counted_tokens") {
		t.Errorf("report past a saturated counter: got %d %s, want 400 naming the token fields", status, body)
	}
	if _, err := d.c.Bottle(context.Background(), "other"); !errors.Is(err, budget.ErrNotFound) {
		t.Errorf("bottle of the refused report: %v, want not found", err)
	}
}

// TestIngestTimestamps: a time the ledger cannot store (it keeps int64
// nanoseconds: 1677 to 2262) or cannot parse is a 400 naming ts; a future
// time is brought back to the time of receipt; a past one is kept.
func TestIngestTimestamps(t *testing.T) {
	past := time.Date(2026, 11, 21, 20, 0, 0, 0, time.UTC)
	refused := []struct{ name, ts string }{
		{"after 2262", `"2300-01-01T00:00:00Z"`},
		{"before 1678", `"1600-01-01T00:00:00Z"`},
		{"not a time", `"yesterday"`},
		{"a number", `1732219200`},
		{"year 10000", `"10000-01-01T00:00:00Z"`},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			d := startDaemon(t, nil, nil)
			status, body := d.post(`{"id":"m","bottle":"b1","provider":"claude","input_tokens":1,"ts":` + tt.ts + `}`)
			if status != 400 || !strings.Contains(body, "ts:") {
				t.Errorf("got %d %s, want 400 naming ts", status, body)
			}
			d.wantNothingChanged(tt.name)
		})
	}
	d := startDaemon(t, nil, nil)
	before := time.Now()
	future := before.Add(365 * 24 * time.Hour).UTC().Format(time.RFC3339)
	for id, ts := range map[string]string{"future": future, "past": past.Format(time.RFC3339)} {
		if status, body := d.post(`{"id":"` + id + `","bottle":"` + id + `","provider":"claude","input_tokens":1,"ts":"` + ts + `"}`); status != 200 {
			t.Fatalf("%s: got %d %s", id, status, body)
		}
	}
	after := time.Now()
	got := func(bottle string) time.Time {
		rs, err := d.db.RecentReports(context.Background(), bottle, 1)
		if err != nil || len(rs) != 1 {
			t.Fatalf("reports of %s: %+v %v", bottle, rs, err)
		}
		return rs[0].TS
	}
	if ts := got("future"); ts.Before(before) || ts.After(after) {
		t.Errorf("future ts stored as %s, want the time of receipt (between %s and %s)", ts, before, after)
	}
	if ts := got("past"); !ts.Equal(past) {
		t.Errorf("past ts stored as %s, want %s", ts, past)
	}
}

// TestIngestTextFields: ids, models and hosts must be valid UTF-8 (JSON
// decoding would fold distinct invalid ids into one U+FFFD), models and
// hosts at most 256 bytes.
func TestIngestTextFields(t *testing.T) {
	long := strings.Repeat("m", 256)
	tests := []struct {
		name, body string
		status     int
		want       string
	}{
		{"invalid UTF-8 id", "{\"id\":\"msg_\xff\",\"bottle\":\"b1\",\"provider\":\"claude\"}", 400, "id:"},
		{"another invalid UTF-8 id", "{\"id\":\"msg_\xfe\",\"bottle\":\"b1\",\"provider\":\"claude\"}", 400, "id:"},
		{"escaped replacement character id", `{"id":"msg_\ufffd","bottle":"b1","provider":"claude"}`, 400, "id:"},
		{"invalid UTF-8 model", "{\"id\":\"m\",\"bottle\":\"b1\",\"provider\":\"claude\",\"model\":\"x\xc3\"}", 400, "model:"},
		{"invalid UTF-8 bottle", "{\"id\":\"m\",\"bottle\":\"b\xff\",\"provider\":\"claude\"}", 400, "bottle"},
		{"invalid UTF-8 agent", "{\"id\":\"m\",\"bottle\":\"b1\",\"agent\":\"a\xff\",\"provider\":\"claude\"}", 400, "agent"},
		{"invalid UTF-8 provider", "{\"id\":\"m\",\"bottle\":\"b1\",\"provider\":\"c\xff\"}", 400, "provider"},
		{"invalid UTF-8 host", "{\"id\":\"m\",\"bottle\":\"b1\",\"provider\":\"claude\",\"host\":\"h\xff\"}", 400, "host:"},
		{"model over 256 bytes", `{"id":"m","bottle":"b1","provider":"claude","model":"` + long + `x"}`, 400, "model: longer than 256"},
		{"host over 256 bytes", `{"id":"m","bottle":"b1","provider":"claude","host":"` + long + `x"}`, 400, "host: longer than 256"},
		{"model of 256 bytes", `{"id":"m","bottle":"b1","provider":"claude","model":"` + long + `"}`, 200, "accepted"},
		{"UTF-8 id", `{"id":"msg_é","bottle":"b1","provider":"claude"}`, 200, "accepted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := startDaemon(t, nil, nil)
			status, body := d.post(tt.body)
			if status != tt.status || !strings.Contains(body, tt.want) {
				t.Errorf("got %d %s, want %d naming %q", status, body, tt.status, tt.want)
			}
			if tt.status != 200 {
				d.wantNothingChanged(tt.name)
			}
		})
	}
}

// TestRefusedRequestsChangeNothing: a 400 on the last report of a batch
// and a 413 register no bottle and store nothing.
func TestRefusedRequestsChangeNothing(t *testing.T) {
	d := startDaemon(t, nil, nil)
	batch := "{\"id\":\"a\",\"bottle\":\"fresh\",\"provider\":\"claude\",\"input_tokens\":1}\n" +
		"{\"id\":\"b\",\"bottle\":\"fresh2\",\"provider\":\"claude\",\"input_tokens\":-1}\n"
	if status, body := d.raw("POST", "/v1/usage", "application/x-ndjson", batch); status != 400 {
		t.Errorf("batch with a bad report: got %d %s, want 400", status, body)
	}
	d.wantNothingChanged("400 batch")
	big := `{"id":"m","bottle":"fresh","provider":"claude","model":"` + strings.Repeat("x", api.MaxIngestBytes) + `"}`
	if status, body := d.post(big); status != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized body: got %d %.100s, want 413", status, body)
	}
	d.wantNothingChanged("413")
}

// TestAuditVerifyCountsGoodEntries breaks the chain at entry k and expects
// the reply to say k-1 entries verified.
func TestAuditVerifyCountsGoodEntries(t *testing.T) {
	d := startDaemon(t, nil, nil)
	ctx := context.Background()
	for i := range 5 {
		if _, err := d.db.AppendAudit(ctx, budget.AuditEntry{Kind: "test", Detail: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := d.db.Audit(ctx, "", 1)
	if err != nil || len(entries) != 1 {
		t.Fatalf("audit: %v", err)
	}
	k := entries[0].Seq - 2
	raw, err := sql.Open("sqlite", filepath.Join(d.dir, "bot-bottle.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	for _, q := range []string{`DROP TRIGGER audit_no_update`, fmt.Sprintf(`UPDATE audit SET detail = 'edited' WHERE seq = %d`, k)} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	status, body := d.raw("GET", "/v1/audit/verify", "", "")
	var v api.AuditVerify
	if err := json.Unmarshal([]byte(body), &v); err != nil || status != 409 || v.OK || v.Entries != k-1 {
		t.Errorf("got %d %s, want 409 with %d good entries (broken at %d)", status, body, k-1, k)
	}
}

// TestStatusSaysReadOnly serves a controller over a ledger opened
// read-only: status says so, where a normal daemon's says writable.
func TestStatusSaysReadOnly(t *testing.T) {
	d := startDaemon(t, nil, nil)
	if st, err := d.c.Status(context.Background()); err != nil || st.StoreReadOnly {
		t.Errorf("writable daemon: %+v %v, want store_read_only false", st, err)
	}
	d.Stop()
	ctx := context.Background()
	ro, err := store.OpenReadOnly(ctx, filepath.Join(d.dir, "bot-bottle.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	srv, err := controller.New(ctx, controller.Config{Ledger: ro})
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "bc")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "s.sock")
	l, err := controller.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Shutdown(ctx)
	c := client.New(sock, client.WithRetry(0))
	defer c.Close()
	st, err := c.Status(ctx)
	if err != nil || !st.StoreReadOnly || !strings.Contains(st.StoreError, "read-only") {
		t.Errorf("read-only ledger: %+v %v, want store_read_only true with a reason", st, err)
	}
}

// TestLoadWarnsAboutClampedTotals: the daemon that starts on out-of-range
// totals says so in its log, naming the row and the stored values.
func TestLoadWarnsAboutClampedTotals(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "bot-bottle.db")
	db, err := store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	raw, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(`INSERT INTO totals (bottle, agent, provider, counted, reports) VALUES ('big', 'impl', 'claude', 1.8e19, 2)`); err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	if _, err := controller.New(ctx, controller.Config{Ledger: db, Log: slog.New(slog.NewTextHandler(&logs, nil))}); err != nil {
		t.Fatalf("New on a ledger with a REAL total: %v", err)
	}
	for _, want := range []string{"level=WARN", "bottle=big", "agent=impl", "provider=claude", "counted=1.8e+19"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
}

// TestRawCountsOverTheBound: counts read from a raw body are bounded like
// the fields, and the 400 says they came from raw.
func TestRawCountsOverTheBound(t *testing.T) {
	dt := daemontest.Start(t, daemontest.Options{RawParser: bcdaemon.ParseRaw})
	d := &daemon{Daemon: dt, t: t, dir: dt.Dir, sock: dt.Sock, db: dt.DB, c: dt.Client}
	status, body := d.post(`{"id":"m","bottle":"b1","provider":"claude","format":"anthropic",` +
		`"raw":{"id":"msg_1","type":"message","model":"claude-sonnet-4-5","usage":{"input_tokens":9000000000000000000,"output_tokens":1}}}`)
	if status != 400 || !strings.Contains(body, "raw: ") || !strings.Contains(body, "input_tokens") {
		t.Errorf("got %d %s, want 400 naming raw and input_tokens", status, body)
	}
	d.wantNothingChanged("raw over the bound")
}
