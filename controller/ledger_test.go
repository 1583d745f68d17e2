package controller_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A -wal file deleted under the daemon would swallow the reports it goes on
// acknowledging: the next ingest is refused with 503 saying to restart,
// while the gate keeps answering from memory.
func TestDeletedWALRefusesIngestGateStillAnswers(t *testing.T) {
	d := startDaemon(t, nil, nil)
	d.ingest(report("m1", "b1", "a", "claude", 10))
	if err := os.Remove(filepath.Join(d.dir, "bot-bottle.db-wal")); err != nil {
		t.Fatal(err)
	}
	status, body := d.raw("POST", "/v1/usage", "", `{"id":"m2","bottle":"b1","agent":"a","provider":"claude","input_tokens":5}`)
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "-wal was deleted") || !strings.Contains(body, "restart the daemon") {
		t.Errorf("got %d %s, want 503 naming the deleted -wal and saying to restart", status, body)
	}
	if v := d.verdict("b1", "a", "claude"); v.Used != 10 || !v.Allowed {
		t.Errorf("got %+v, want the gate answering with the 10 tokens acknowledged before", v)
	}
	st, err := d.c.Status(context.Background())
	if err != nil || !st.StoreReadOnly || !strings.Contains(st.StoreError, "-wal was deleted") {
		t.Errorf("status: got %+v (%v), want the store shown refusing writes, saying why", st, err)
	}
}
