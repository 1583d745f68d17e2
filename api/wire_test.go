package api_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/api"
)

// TestAuditEntryWire pins GET /v1/audit's entries to the bytes they had
// when api declared its own AuditEntry: the ledger's record now serves as
// the wire type, and must not change the wire.
func TestAuditEntryWire(t *testing.T) {
	ts := time.Date(2026, 11, 21, 20, 0, 0, 5, time.UTC)
	tests := []struct {
		name  string
		entry api.AuditEntry
		want  string
	}{
		{
			name:  "with a bottle",
			entry: api.AuditEntry{Seq: 3, TS: ts, Kind: "warn", Bottle: "b1", Detail: "past 80%", PrevHash: "p", Hash: "h"},
			want:  `{"seq":3,"ts":"2026-11-21T20:00:00.000000005Z","kind":"warn","bottle":"b1","detail":"past 80%","prev_hash":"p","hash":"h"}`,
		},
		{
			name:  "host-wide, bottle left out",
			entry: api.AuditEntry{Seq: 1, Kind: "settings"},
			want:  `{"seq":1,"ts":"0001-01-01T00:00:00Z","kind":"settings","detail":"","prev_hash":"","hash":""}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := json.Marshal(tt.entry)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}
