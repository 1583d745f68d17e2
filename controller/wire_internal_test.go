package controller

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
)

// meterLine is a report as `bottlecap meter` sends it.
const meterLine = `{"id":"chatcmpl-r1-0-17","bottle":"bench-meter","agent":"bench","provider":"codex","host":"127.0.0.1","model":"bench","input_tokens":12,"cache_read_tokens":0,"cache_write_tokens":0,"output_tokens":3,"reasoning_tokens":0,"complete":true,"ts":"2026-11-21T22:01:02.123456789Z","counted_tokens":0}`

func TestDecodeReport(t *testing.T) {
	yes, no := true, false
	tests := []struct {
		name, line string
		fast       bool   // read by hand
		want       string // an error containing this, or "" for success
		complete   *bool
	}{
		{"meter's line", meterLine, true, "", &yes},
		{"complete false", `{"id":"a","bottle":"b","complete":false}`, true, "", &no},
		{"escaped id goes through encoding/json", `{"id":"a\u00e9","bottle":"b"}`, false, "", nil},
		{"raw body goes through encoding/json", `{"id":"a","bottle":"b","raw":{"usage":{}},"format":"auto"}`, false, "", nil},
		{"unknown field named", `{"id":"a","bottle":"b","tokens":3}`, false, `unknown field "tokens"`, nil},
		{"wrong type named", `{"id":"a","bottle":"b","input_tokens":"3"}`, false, "input_tokens", nil},
		{"trailing data", `{"id":"a","bottle":"b"} {"id":"c"}`, false, "unexpected data after the report", nil},
		{"empty", ``, false, "empty", nil},
		{"cut short", `{"id":"a",`, false, "JSON ends before the object does", nil},
		{"malformed", `{"id":"a",]`, false, "malformed JSON at byte 11", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var fast api.Report
			if got := api.DecodeReportFast([]byte(tt.line), &fast); got != tt.fast {
				t.Errorf("read by hand: %v, want %v", got, tt.fast)
			}
			r, err := decodeReport([]byte(tt.line))
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("error %v, want none", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, budget.ErrInvalid)):
				t.Fatalf("error %v, want an invalid-report error containing %q", err, tt.want)
			case tt.want == "" && fmt.Sprint(r.Complete != nil && *r.Complete) != fmt.Sprint(tt.complete != nil && *tt.complete):
				t.Errorf("complete %v, want %v", r.Complete, tt.complete)
			}
		})
	}
}

// BenchmarkReadNDJSON200 is one meter batch: 200 reports decoded and
// validated (go test -bench NDJSON -run ^$ ./controller).
func BenchmarkReadNDJSON200(b *testing.B) {
	st := budget.DefaultSettings()
	s := &Server{limits: DefaultLimits(), core: &Core{settings: st, book: budget.NewBook(st), now: time.Now}, now: time.Now}
	body := []byte(strings.Repeat(meterLine+"\n", 200))
	for b.Loop() {
		if _, _, err := s.readNDJSON(context.Background(), Peer{}, bufio.NewReader(bytes.NewReader(body))); err != nil {
			b.Fatal(err)
		}
	}
}
