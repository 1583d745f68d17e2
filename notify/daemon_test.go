package notify_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/daemon/daemontest"
	"github.com/bot-bottle/bottlecap/internal/testutil"
)

// These tests run a real daemon whose settings list a sink.

func sinkSettings(sink budget.NotifySink) *budget.Settings {
	s := budget.DefaultSettings()
	s.Budget = budget.Limits{"claude": budget.Lifetime(1000)}
	s.Notify = []budget.NotifySink{sink}
	return s
}

func claudeReport(id, bottle string, tokens int64) api.Report {
	return api.Report{Report: budget.Report{ID: id, Bottle: bottle, Agent: "a", Provider: "claude", Usage: budget.Usage{Input: tokens}}}
}

func ingest(t *testing.T, d *daemontest.Daemon, reports ...api.Report) {
	t.Helper()
	reply, err := d.Client.Ingest(context.Background(), reports)
	if err != nil || reply.Accepted != len(reports) {
		t.Fatalf("ingest: %+v, %v; want %d accepted", reply, err, len(reports))
	}
}

// scrape reads one sink's series of a metric from the daemon's /metrics.
func scrape(t *testing.T, d *daemontest.Daemon, name, sink string) float64 {
	t.Helper()
	body, err := d.Client.Metrics(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	prefix := fmt.Sprintf("%s{sink=%q} ", name, sink)
	for line := range strings.SplitSeq(body, "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	t.Fatalf("no %s… in /metrics:\n%s", prefix, body)
	return 0
}

// TestDaemonTellsItsSink: a budget's warn and crossing reach the sink the
// settings list, as the notices the log tells.
func TestDaemonTellsItsSink(t *testing.T) {
	h := newHook(t, nil)
	d := daemontest.Start(t, daemontest.Options{Settings: sinkSettings(budget.NotifySink{Name: "ops", Webhook: h.URL})})
	ingest(t, d, claudeReport("r1", "dev", 850))
	ingest(t, d, claudeReport("r2", "dev", 150))
	testutil.Eventually(t, "warn and crossing taken", func() bool { _, k := h.counts(); return k == 2 })
	var kinds []budget.NoticeKind
	for i := range 2 {
		var x budget.Notice
		if err := json.Unmarshal(h.took(i).body, &x); err != nil {
			t.Fatal(err)
		}
		kinds = append(kinds, x.Kind)
	}
	if fmt.Sprint(kinds) != "[warn crossing]" {
		t.Errorf("the sink took %q, want warn then crossing", kinds)
	}
	testutil.Eventually(t, "nothing pending", func() bool { return scrape(t, d, "bottlecap_notify_pending", "ops") == 0 })
	if f := scrape(t, d, "bottlecap_notify_failures_total", "ops"); f != 0 {
		t.Errorf("failures %v, want 0", f)
	}
}

// TestHangingSinkDoesNotHoldIngest: with a webhook that never answers,
// reports that cross a hundred budgets are all acknowledged and acted
// on; the notices wait in the queue.
func TestHangingSinkDoesNotHoldIngest(t *testing.T) {
	release := make(chan struct{})
	hung := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		select {
		case hung <- struct{}{}:
		default:
		}
		<-release
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs first: the handlers return, then the server closes
	s := sinkSettings(budget.NotifySink{Name: "hung", Webhook: srv.URL})
	s.Budget = nil // only the bottles' own budgets: one crossing each
	d := daemontest.Start(t, daemontest.Options{Settings: s})
	const bottles = 100
	for i := range bottles {
		if _, err := d.Client.PutBottle(context.Background(), fmt.Sprintf("b%d", i),
			api.BottleRequest{Agent: "a", Budget: budget.Limits{"claude": budget.Lifetime(10)}}); err != nil {
			t.Fatal(err)
		}
	}
	var batch []api.Report
	for i := range bottles {
		batch = append(batch, claudeReport(fmt.Sprintf("r%d", i), fmt.Sprintf("b%d", i), 20))
		if len(batch) == 10 {
			ingest(t, d, batch...)
			batch = nil
		}
	}
	<-hung // the sink has been holding a delivery all along
	for i := range bottles {
		if b, err := d.Client.Bottle(context.Background(), fmt.Sprintf("b%d", i)); err != nil || b.State != budget.Pending {
			t.Fatalf("bottle b%d: %+v, %v; want pending (its cutoff journaled)", i, b.State, err)
		}
	}
	testutil.Until(t, testutil.Within, "every crossing queued", func() string {
		if n := scrape(t, d, "bottlecap_notify_pending", "hung"); n != bottles {
			return fmt.Sprintf("%v pending, want %d", n, bottles)
		}
		return ""
	})
}

// TestDaemonRestartDeliversPending: a notice the sink refused before the
// daemon stopped is delivered after it starts again, once.
func TestDaemonRestartDeliversPending(t *testing.T) {
	up := make(chan struct{})
	h := newHook(t, func(int) int {
		select {
		case <-up:
			return http.StatusOK
		default:
			return http.StatusServiceUnavailable
		}
	})
	d := daemontest.Start(t, daemontest.Options{Settings: sinkSettings(budget.NotifySink{Name: "ops", Webhook: h.URL,
		Events: []budget.NoticeKind{budget.NoticeCrossing}}), NotifyRetry: quick})
	ingest(t, d, claudeReport("r1", "dev", 1000))
	testutil.Eventually(t, "a failed attempt", func() bool { return scrape(t, d, "bottlecap_notify_failures_total", "ops") >= 1 })
	d.Stop()
	close(up)
	d.Restart()
	testutil.Eventually(t, "taken after the restart", func() bool {
		_, k := h.counts()
		return k == 1 && scrape(t, d, "bottlecap_notify_pending", "ops") == 0
	})
	if _, k := h.counts(); k != 1 {
		t.Errorf("taken %d times, want once", k)
	}
}
