package controller_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/client"
)

// allow asks the daemon for an allowance and fails the test on error.
func (d *daemon) allow(req api.AllowanceRequest) api.Allowance {
	d.t.Helper()
	a, err := d.c.Allow(context.Background(), req)
	if err != nil {
		d.t.Fatalf("allow %+v: %v", req, err)
	}
	return a
}

// TestSocketAllowanceSettledByReport: a grant holds tokens at the bottle
// (verdict, bottles, status, metrics), the reports naming it settle them
// through both ingest paths (held back to 0, the usage counted), and a
// release closes it.
func TestSocketAllowanceSettledByReport(t *testing.T) {
	d := startDaemon(t, nil, nil)
	d.register("b1", api.BottleRequest{Agent: "a", Budget: claude(1000)})
	a := d.allow(api.AllowanceRequest{Bottle: "b1", Provider: "claude", Tokens: 300})
	if a.Granted != 300 || a.Held != 300 || a.Agent != "a" || a.Weight != 1 || a.Verdict.Held != 300 || a.Verdict.Remaining != 700 {
		t.Fatalf("got %+v; want 300 granted and held for agent a at weight 1, 700 remaining", a)
	}
	d.wantHeldEverywhere("granted", "b1", 300)

	single := report("r1", "b1", "a", "claude", 120)
	single.Allowance = a.ID
	d.ingest(single)
	if v := d.verdict("b1", "", "claude"); v.Used != 120 || v.Held != 180 || v.Remaining != 700 {
		t.Errorf("after a report of 120: verdict %+v; want 120 used, 180 held, 700 remaining", v)
	}
	batch := []api.Report{report("r2", "b1", "a", "claude", 100), report("r3", "b1", "a", "claude", 7), report("r4", "b1", "a", "claude", 80)}
	batch[0].Allowance, batch[2].Allowance = a.ID, a.ID
	d.ingest(batch...) // two reports: NDJSON
	d.wantHeldEverywhere("the batch settled", "b1", 0)
	if v := d.verdict("b1", "", "claude"); v.Used != 307 || v.Remaining != 693 {
		t.Errorf("after the batch: verdict %+v; want 307 used, 693 remaining", v)
	}

	if err := d.c.ReleaseAllowance(context.Background(), a.ID); err != nil {
		t.Fatalf("release: %v", err)
	}
	if err := d.c.ReleaseAllowance(context.Background(), a.ID); !errors.Is(err, budget.ErrNotFound) {
		t.Errorf("a second release: got %v, want ErrNotFound", err)
	}
	if d.metric("bottlecap_allowances") != 0 {
		t.Errorf("live allowances after the release: %v, want 0", d.metric("bottlecap_allowances"))
	}
}

// wantHeldEverywhere checks what the verdict, the bottle's view, the
// status and the metrics say a bottle (the only one holding) holds.
func (d *daemon) wantHeldEverywhere(when, slug string, held int64) {
	d.t.Helper()
	if v := d.verdict(slug, "", "claude"); v.Held != held {
		d.t.Errorf("%s: the verdict holds %d, want %d", when, v.Held, held)
	}
	b, err := d.c.Bottle(context.Background(), slug)
	if err != nil || b.Held["claude"] != held {
		d.t.Errorf("%s: GET /v1/bottles/%s holds %v (%v), want claude %d", when, slug, b.Held, err, held)
	}
	st, err := d.c.Status(context.Background())
	if err != nil || st.Held["claude"] != held || st.Allowances != 1 {
		d.t.Errorf("%s: status: %d allowances holding %v (%v), want 1 holding claude %d", when, st.Allowances, st.Held, err, held)
	}
	if got := d.metric(fmt.Sprintf(`bottlecap_held_tokens{id=%q,provider="claude",scope="bottle"}`, slug)); got != float64(held) {
		d.t.Errorf("%s: bottlecap_held_tokens of %s: %v, want %d", when, slug, got, held)
	}
}

// TestSocketAllowanceExpires: an allowance not renewed within the
// settings' TTL lapses; its holds are given back and its id is no more.
func TestSocketAllowanceExpires(t *testing.T) {
	s := budget.DefaultSettings()
	s.AllowanceTTL = 300 * time.Millisecond
	d := startDaemon(t, s, nil)
	d.register("b1", api.BottleRequest{Agent: "a", Budget: claude(1000)})
	a := d.allow(api.AllowanceRequest{Bottle: "b1", Provider: "claude", Tokens: 900})
	if a.Held != 900 || a.ExpiresAt.IsZero() {
		t.Fatalf("got %+v, want 900 held until a deadline", a)
	}
	eventually(t, "the unrenewed allowance lapsed", func() bool { return d.verdict("b1", "", "claude").Held == 0 })
	if got := d.allow(api.AllowanceRequest{Bottle: "b1", Provider: "claude", Tokens: 1000}); got.Granted != 1000 {
		t.Errorf("after the lapse: %d granted, want all 1000", got.Granted)
	}
	if _, err := d.c.Allow(context.Background(), api.AllowanceRequest{ID: a.ID}); !errors.Is(err, budget.ErrNotFound) {
		t.Errorf("renewing the lapsed allowance: %v, want ErrNotFound", err)
	}
}

// TestSocketAllowanceBadInput: bad requests are 400 naming the field and
// change nothing; unknown ids are 404; a report naming an unknown
// allowance counts all the same.
func TestSocketAllowanceBadInput(t *testing.T) {
	d := startDaemon(t, nil, nil)
	d.register("b1", api.BottleRequest{Agent: "a", Budget: claude(1000)})
	for _, tt := range []struct {
		method, path, body string
		want               int
		field              string
	}{
		{"POST", "/v1/allowances", `{"bottle":"b1","provider":"claude","tokens":-1}`, 400, "tokens"},
		{"POST", "/v1/allowances", `{"bottle":"b1","provider":"claude","tokens":1000000000001}`, 400, "tokens"},
		{"POST", "/v1/allowances", `{"bottle":"b1","provider":"claude","tokens":1.5}`, 400, "tokens"},
		{"POST", "/v1/allowances", `{"bottle":"-b1","provider":"claude","tokens":1}`, 400, "bottle"},
		{"POST", "/v1/allowances", `{"bottle":"b1","provider":"a b","tokens":1}`, 400, "provider"},
		{"POST", "/v1/allowances", `{"bottle":"b1","provider":"claude","tokens":1,"tokenz":1}`, 400, "tokenz"},
		{"POST", "/v1/allowances", `{"id":"al-none","tokens":1}`, 404, "al-none"},
		{"DELETE", "/v1/allowances/al-none", ``, 404, "al-none"},
		{"POST", "/v1/usage", `{"id":"r1","bottle":"b1","provider":"claude","input_tokens":1,"allowance":5}`, 400, "allowance"},
		{"POST", "/v1/usage", `{"id":"r1","bottle":"b1","provider":"claude","input_tokens":1,"allowance":"` + strings.Repeat("x", 300) + `"}`, 400, "allowance"},
		{"POST", "/v1/usage", `{"id":"r2","bottle":"b1","provider":"claude","input_tokens":3,"allowance":"al-none"}`, 200, "accepted"},
	} {
		status, body := d.raw(tt.method, tt.path, "application/json", tt.body)
		if status != tt.want || !strings.Contains(body, tt.field) {
			t.Errorf("%s %s %.80s: got %d %s; want %d naming %s", tt.method, tt.path, tt.body, status, body, tt.want, tt.field)
		}
	}
	if v := d.verdict("b1", "", "claude"); v.Used != 3 || v.Held != 0 {
		t.Errorf("after the bad requests: %+v; want only the 3 tokens of the good report, nothing held", v)
	}
}

// eventsPeerEnv, when set, makes TestPeerEventsProcess act as a
// non-operator watching bottle b1.
const eventsPeerEnv = "BOTTLECAP_TEST_EVENTS_SOCKET"

// TestPeerEventsProcess is not a test on its own: run as another uid with
// eventsPeerEnv set, it watches bottle b1's events and prints the first
// state event it is sent.
func TestPeerEventsProcess(t *testing.T) {
	sock := os.Getenv(eventsPeerEnv)
	if sock == "" {
		t.Skip("helper process for TestNonOperatorWatchesItsBottle")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := client.New(sock, client.WithRetry(0)).BottleEvents(ctx, "b1")
	if err != nil {
		fmt.Println("subscribe:", err)
		return
	}
	for e := range s.C {
		if e.Type == "state" {
			json.NewEncoder(os.Stdout).Encode(e)
			return
		}
	}
	fmt.Println("stream ended:", s.Err())
}

// TestNonOperatorWatchesItsBottle: a peer that is no operator subscribes
// to one bottle's events; an operator's cutoff of another bottle does not
// reach it, the cutoff of its bottle does, as a state event.
func TestNonOperatorWatchesItsBottle(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run a client as nobody")
	}
	d := startDaemon(t, nil, nil)
	d.register("b1", api.BottleRequest{Agent: "a"})
	d.register("b2", api.BottleRequest{Agent: "a"})
	cmd := peerCommand(t, d, &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}, "TestPeerEventsProcess", eventsPeerEnv)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	eventually(t, "nobody subscribed", func() bool { return d.metric("bottlecap_event_subscribers") == 1 })
	for _, slug := range []string{"b2", "b1"} {
		if _, err := d.c.Act(context.Background(), slug, api.ActionRequest{Action: "cutoff", Reason: "operator says"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("watcher: %v\n%s", err, out.Bytes())
	}
	var e api.Event
	if err := json.NewDecoder(&out).Decode(&e); err != nil {
		t.Fatalf("watcher printed %q: %v", out.Bytes(), err)
	}
	var data struct{ State, Reason string }
	json.Unmarshal(e.Data, &data)
	if e.Bottle != "b1" || data.State != string(budget.Pending) || !strings.Contains(data.Reason, "operator says") {
		t.Errorf("the watcher's first state event: %+v %+v; want b1 pending for the operator's cutoff", e, data)
	}
}

// TestSocketRestartForgetsAllowances: after a restart nothing is held
// (allowances live in memory), the old id is unknown so its meter asks
// again, and a report naming it is counted all the same.
func TestSocketRestartForgetsAllowances(t *testing.T) {
	d := startDaemon(t, nil, nil)
	d.register("b1", api.BottleRequest{Agent: "a", Budget: claude(1000)})
	a := d.allow(api.AllowanceRequest{Bottle: "b1", Provider: "claude", Tokens: 800})
	d.Stop()
	d.Restart()
	d.c = d.Client
	if v := d.verdict("b1", "", "claude"); v.Held != 0 || v.Remaining != 1000 {
		t.Errorf("after the restart: %+v; want nothing held", v)
	}
	if _, err := d.c.Allow(context.Background(), api.AllowanceRequest{ID: a.ID, Tokens: 10}); !errors.Is(err, budget.ErrNotFound) {
		t.Errorf("the old allowance after the restart: %v, want ErrNotFound", err)
	}
	late := report("r1", "b1", "a", "claude", 150)
	late.Allowance = a.ID
	d.ingest(late)
	if again := d.allow(api.AllowanceRequest{Bottle: "b1", Provider: "claude", Tokens: 1000}); again.Granted != 850 {
		t.Errorf("asking again: %d granted, want the 850 left after the report", again.Granted)
	}
}
