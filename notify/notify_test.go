package notify_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/internal/retry"
	"github.com/bot-bottle/bottlecap/internal/testutil"
	"github.com/bot-bottle/bottlecap/notify"
	"github.com/bot-bottle/bottlecap/store"
	"github.com/prometheus/client_golang/prometheus"
)

// quick retries at once, so that tests of retries take milliseconds.
var quick = retry.Backoff{Base: time.Millisecond, Max: 10 * time.Millisecond}

// openLedger opens a real ledger in the test's directory.
func openLedger(t *testing.T, path string) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// start runs a notifier over a ledger until the test ends.
func start(t *testing.T, q notify.Queue, sinks ...budget.NotifySink) *notify.Notifier {
	t.Helper()
	n := notify.Start(notify.Config{Queue: q, Sinks: sinks, Host: "host1", Version: "test", Retry: quick})
	t.Cleanup(n.Stop)
	return n
}

// hook is a webhook receiver: it answers each request with the status
// its answer function gives (200 by default) and keeps what it took.
type hook struct {
	*httptest.Server
	mu       sync.Mutex
	answer   func(n int) int // status for the n-th request (1-based)
	requests int
	taken    []taken
}

// taken is a request the hook answered 2xx.
type taken struct {
	body   []byte
	header http.Header
}

func newHook(t *testing.T, answer func(n int) int) *hook {
	h := &hook{answer: answer}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.requests++
		status := http.StatusOK
		if h.answer != nil {
			status = h.answer(h.requests)
		}
		if status/100 == 2 {
			h.taken = append(h.taken, taken{body: body, header: r.Header.Clone()})
		}
		h.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hook) counts() (requests, taken int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.requests, len(h.taken)
}

func (h *hook) took(i int) taken {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.taken[i]
}

// pending is how many deliveries the ledger holds.
func pending(t *testing.T, db *store.DB) int {
	t.Helper()
	counts, err := db.NoticeCounts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range counts {
		n += c
	}
	return n
}

// metric reads one sink's series of a notifier's metric.
func metric(t *testing.T, n *notify.Notifier, name, sink string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(n)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if m.GetLabel()[0].GetValue() == sink {
				return m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return -1
}

var crossing = budget.Notice{Kind: budget.NoticeCrossing, TS: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC), Bottle: "dev",
	Bottles: []string{"dev"}, Scope: budget.ScopeBottle, ScopeID: "dev", Provider: "claude", Limit: 1000, Used: 1000,
	Action: budget.ActCutoff, Reason: "bottle budget dev exhausted: 1000 of 1000 claude tokens used",
	Text: "bottle budget dev exhausted: 1000 of 1000 claude tokens used: cutoff dev"}

// TestWebhookSigned: a webhook gets the notice as JSON, with its id and
// host, signed with the sink's secret.
func TestWebhookSigned(t *testing.T) {
	h := newHook(t, nil)
	db := openLedger(t, filepath.Join(t.TempDir(), "l.db"))
	n := start(t, db, budget.NotifySink{Name: "ops", Webhook: h.URL + "/hooks/bottlecap", Format: "json", Secret: "s3cret"})
	n.Notify(crossing)
	testutil.Eventually(t, "delivered", func() bool { _, k := h.counts(); return k == 1 })
	got := h.took(0)
	mac := hmac.New(sha256.New, []byte("s3cret"))
	mac.Write(got.body)
	if sig, want := got.header.Get("X-Bottlecap-Signature"), "sha256="+hex.EncodeToString(mac.Sum(nil)); sig != want {
		t.Errorf("signature %q, want %q", sig, want)
	}
	if ct := got.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	var x budget.Notice
	if err := json.Unmarshal(got.body, &x); err != nil {
		t.Fatalf("body %s: %v", got.body, err)
	}
	want := crossing
	want.ID, want.Host = x.ID, "host1"
	if x.ID == "" || fmt.Sprint(x) != fmt.Sprint(want) {
		t.Errorf("notice\n got %+v\nwant %+v with an id", x, want)
	}
	testutil.Eventually(t, "the queue emptied", func() bool { return pending(t, db) == 0 })
	if d := metric(t, n, "bottlecap_notify_delivered_total", "ops"); d != 1 {
		t.Errorf("delivered_total %v, want 1", d)
	}
}

// TestWebhookSlack: format slack posts {"text": …} with the notice's line.
func TestWebhookSlack(t *testing.T) {
	h := newHook(t, nil)
	db := openLedger(t, filepath.Join(t.TempDir(), "l.db"))
	n := start(t, db, budget.NotifySink{Name: "slack", Webhook: h.URL, Format: "slack"})
	n.Notify(crossing)
	testutil.Eventually(t, "delivered", func() bool { _, k := h.counts(); return k == 1 })
	got := h.took(0)
	if want := `{"text":"bottlecap on host1: ` + crossing.Text + `"}`; string(got.body) != want {
		t.Errorf("body %s, want %s", got.body, want)
	}
	if sig := got.header.Get("X-Bottlecap-Signature"); sig != "" {
		t.Errorf("an unsigned sink sent a signature %q", sig)
	}
}

// TestExecSink: a program gets the notice on its standard input.
func TestExecSink(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "notice.json")
	db := openLedger(t, filepath.Join(dir, "l.db"))
	n := start(t, db, budget.NotifySink{Name: "script", Exec: []string{"/bin/sh", "-c", `cat > "$1.tmp" && mv "$1.tmp" "$1"`, "sh", out}})
	n.Notify(crossing)
	testutil.Eventually(t, "the script wrote the notice", func() bool { _, err := os.Stat(out); return err == nil })
	body, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var x budget.Notice
	if err := json.Unmarshal(body, &x); err != nil || x.Kind != budget.NoticeCrossing || x.Text != crossing.Text {
		t.Errorf("the script read %s (%v), want the crossing", body, err)
	}
	testutil.Eventually(t, "the queue emptied", func() bool { return pending(t, db) == 0 })
}

// TestExecSinkFailure: a program that exits non-zero failed; its output
// says why in the queue.
func TestExecSinkFailure(t *testing.T) {
	db := openLedger(t, filepath.Join(t.TempDir(), "l.db"))
	n := start(t, db, budget.NotifySink{Name: "broken", Exec: []string{"/bin/sh", "-c", "echo no route to pager >&2; exit 3"}})
	n.Notify(crossing)
	testutil.Eventually(t, "a failure counted", func() bool { return metric(t, n, "bottlecap_notify_failures_total", "broken") >= 1 })
	ds, err := db.PendingNotices(context.Background(), "broken", 1)
	if err != nil || len(ds) != 1 {
		t.Fatalf("pending %+v, %v; want the notice still queued", ds, err)
	}
	if want := "/bin/sh: exit status 3: no route to pager"; ds[0].LastError != want {
		t.Errorf("last error %q, want %q", ds[0].LastError, want)
	}
}

// TestRetriedUntilTaken: a sink that fails three times gets the notice on
// the fourth attempt, once; each failure is counted.
func TestRetriedUntilTaken(t *testing.T) {
	h := newHook(t, func(n int) int {
		if n <= 3 {
			return http.StatusServiceUnavailable
		}
		return http.StatusNoContent
	})
	db := openLedger(t, filepath.Join(t.TempDir(), "l.db"))
	n := start(t, db, budget.NotifySink{Name: "flaky", Webhook: h.URL})
	n.Notify(crossing)
	testutil.Eventually(t, "taken, and the queue emptied", func() bool { _, k := h.counts(); return k == 1 && pending(t, db) == 0 })
	if requests, k := h.counts(); requests != 4 || k != 1 {
		t.Errorf("%d requests, %d taken; want 4 and 1", requests, k)
	}
	if f := metric(t, n, "bottlecap_notify_failures_total", "flaky"); f != 3 {
		t.Errorf("failures_total %v, want 3", f)
	}
}

// TestEventsChooseTheSinks: a sink gets only the kinds it lists.
func TestEventsChooseTheSinks(t *testing.T) {
	all, some := newHook(t, nil), newHook(t, nil)
	db := openLedger(t, filepath.Join(t.TempDir(), "l.db"))
	n := start(t, db, budget.NotifySink{Name: "all", Webhook: all.URL},
		budget.NotifySink{Name: "some", Webhook: some.URL, Events: []budget.NoticeKind{budget.NoticeActionFailed}})
	n.Notify(budget.Notice{Kind: budget.NoticeWarn, Text: "w"})
	n.Notify(budget.Notice{Kind: budget.NoticeActionFailed, Text: "f"})
	testutil.Eventually(t, "delivered", func() bool {
		_, a := all.counts()
		_, s := some.counts()
		return a == 2 && s == 1 && pending(t, db) == 0
	})
	if !strings.Contains(string(some.took(0).body), `"kind":"action_failed"`) {
		t.Errorf("the action_failed sink got %s", some.took(0).body)
	}
}

// TestPendingSurvivesARestart: what a sink has not taken when the
// notifier stops is delivered by the next one, once, with the same id.
func TestPendingSurvivesARestart(t *testing.T) {
	var mu sync.Mutex
	up := false
	h := newHook(t, func(int) int {
		mu.Lock()
		defer mu.Unlock()
		if up {
			return http.StatusOK
		}
		return http.StatusBadGateway
	})
	path := filepath.Join(t.TempDir(), "l.db")
	db := openLedger(t, path)
	sink := budget.NotifySink{Name: "ops", Webhook: h.URL}
	first := notify.Start(notify.Config{Queue: db, Sinks: []budget.NotifySink{sink}, Retry: quick})
	first.Notify(crossing)
	testutil.Eventually(t, "a failed attempt", func() bool { return metric(t, first, "bottlecap_notify_failures_total", "ops") >= 1 })
	first.Stop()
	db.Close()
	ds := pendingAfterReopen(t, path)
	mu.Lock()
	up = true
	mu.Unlock()
	db = openLedger(t, path)
	start(t, db, sink)
	testutil.Eventually(t, "the queue emptied", func() bool { return pending(t, db) == 0 })
	if _, k := h.counts(); k != 1 {
		t.Fatalf("taken %d times, want once", k)
	}
	var x budget.Notice
	if err := json.Unmarshal(h.took(0).body, &x); err != nil || x.ID == "" || string(h.took(0).body) != string(ds[0].Body) {
		t.Errorf("delivered %s, want the queued %s", h.took(0).body, ds[0].Body)
	}
}

// pendingAfterReopen are the ledger's queued deliveries, read afresh.
func pendingAfterReopen(t *testing.T, path string) []budget.Delivery {
	t.Helper()
	db := openLedger(t, path)
	defer db.Close()
	ds, err := db.PendingNotices(context.Background(), "ops", 10)
	if err != nil || len(ds) != 1 || ds[0].Attempts < 1 {
		t.Fatalf("after stop: pending %+v, %v; want the notice queued with its failed attempts", ds, err)
	}
	return ds
}

// TestQueueCapped: a sink that never answers keeps only the newest
// notices, and the ones dropped are counted.
func TestQueueCapped(t *testing.T) {
	h := newHook(t, func(int) int { return http.StatusInternalServerError })
	db := openLedger(t, filepath.Join(t.TempDir(), "l.db"))
	n := notify.Start(notify.Config{Queue: db, Sinks: []budget.NotifySink{{Name: "down", Webhook: h.URL}}, Retry: quick, MaxQueued: 3})
	t.Cleanup(n.Stop)
	for i := range 10 {
		n.Notify(budget.Notice{Kind: budget.NoticeWarn, Text: fmt.Sprint(i)})
	}
	testutil.Eventually(t, "7 dropped, 3 kept", func() bool {
		return metric(t, n, "bottlecap_notify_dropped_total", "down") == 7 && metric(t, n, "bottlecap_notify_pending", "down") == 3
	})
}

// TestRemovedSinkDropsItsQueue: a reload without a sink drops what was
// queued for it.
func TestRemovedSinkDropsItsQueue(t *testing.T) {
	h := newHook(t, func(int) int { return http.StatusInternalServerError })
	db := openLedger(t, filepath.Join(t.TempDir(), "l.db"))
	n := start(t, db, budget.NotifySink{Name: "gone", Webhook: h.URL})
	n.Notify(crossing)
	testutil.Eventually(t, "queued", func() bool { return pending(t, db) == 1 })
	n.SetSinks(nil)
	testutil.Eventually(t, "dropped", func() bool {
		return pending(t, db) == 0 && metric(t, n, "bottlecap_notify_dropped_total", "gone") == 1
	})
}

// stuckQueue is a ledger whose queue writes wait until released.
type stuckQueue struct {
	*store.DB
	release chan struct{}
}

func (q stuckQueue) QueueNotices(ctx context.Context, ds []budget.Delivery, limit int) (map[string]int, error) {
	<-q.release
	return q.DB.QueueNotices(ctx, ds, limit)
}

// TestNotifyNeverWaits: while the ledger does not take the queue's
// writes, Notify still returns for every notice: what the hand-off has
// no room for is dropped and counted, the rest is queued once the ledger
// is back.
func TestNotifyNeverWaits(t *testing.T) {
	db := openLedger(t, filepath.Join(t.TempDir(), "l.db"))
	q := stuckQueue{DB: db, release: make(chan struct{})}
	n := notify.Start(notify.Config{Queue: q, Sinks: []budget.NotifySink{{Name: "ops", Webhook: "http://127.0.0.1:1/"}}, Retry: quick})
	t.Cleanup(n.Stop)
	const sent = 5000
	for range sent {
		n.Notify(crossing)
	}
	dropped := metric(t, n, "bottlecap_notify_dropped_total", "ops")
	// The writer holds one batch (a notice and a hand-off's worth) in
	// its stuck write; the hand-off holds as many more.
	if dropped < sent-2*1024-1 || dropped >= sent {
		t.Errorf("dropped %v of %d, want all but what the writer and the hand-off hold", dropped, sent)
	}
	close(q.release)
	testutil.Eventually(t, "the rest queued", func() bool {
		counts, _ := db.NoticeCounts(context.Background())
		return float64(counts["ops"])+dropped == sent
	})
}
