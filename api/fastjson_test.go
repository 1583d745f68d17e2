package api_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
)

// The fuzz targets hold the hand-written readers to encoding/json: whatever
// a reader accepts, encoding/json accepts too, with the same result.

func FuzzDecodeReportFast(f *testing.F) {
	for _, seed := range []string{
		`{"id":"chatcmpl-r1-0-17","bottle":"bench-meter","agent":"bench","provider":"codex","host":"127.0.0.1","model":"bench","input_tokens":12,"cache_read_tokens":0,"cache_write_tokens":0,"output_tokens":3,"reasoning_tokens":0,"complete":true,"ts":"2026-11-21T22:01:02.123456789Z","counted_tokens":0}`,
		`{}`, ` { "id" : "a" , "bottle":"b" } `, `{"complete":false,"complete":true}`,
		`{"input_tokens":-0}`, `{"input_tokens":012}`, `{"input_tokens":1.5}`, `{"input_tokens":1e3}`,
		`{"input_tokens":999999999999999999}`, `{"input_tokens":9999999999999999999}`,
		`{"id":"a\"b"}`, `{"id":"é"}`, `{"ID":"a"}`, `{"id":null}`, `{"ts":"2026-11-21"}`,
		`{"raw":{"usage":{}}}`, `{"id":"a"} x`, `{"complete":truex}`, `{"id":"a",}`,
		`{"id":"r1","bottle":"b","provider":"claude","output_tokens":5,"allowance":"al-00112233445566778899aabbccddeeff"}`,
		`{"allowance":""}`, `{"allowance":null}`, `{"allowance":5}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var fast api.Report
		if !api.DecodeReportFast(b, &fast) {
			return
		}
		var slow api.Report
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&slow); err != nil {
			t.Fatalf("%q: accepted by hand, refused by encoding/json: %v", b, err)
		}
		if !fast.TS.Equal(slow.TS) {
			t.Fatalf("%q: ts %v by hand, %v by encoding/json", b, fast.TS, slow.TS)
		}
		fast.TS = slow.TS
		same(t, b, fast, slow)
	})
}

const replySeed = `{"accepted":1,"duplicates":0,"verdicts":[{"allowed":true,"bottle":"b-1","agent":"implementer","provider":"claude","scope":"bottle","scope_id":"b-1","limit":1000000000000,"used":15,"remaining":999999999985,"state":"active","reason":""}]}` + "\n"

func FuzzDecodeIngestReplyFast(f *testing.F) {
	for _, seed := range []string{
		replySeed, `{"accepted":0,"duplicates":1,"verdicts":[]}`, `{"verdicts":null}`,
		`{"verdicts":[{"allowed":true}],"verdicts":[{}]}`, `{"verdicts":[{"unlimited":true,"limit":0}]}`,
		`{"accepted":1,"extra":2}`, `{"verdicts":[{"reason":"budget \"x\" exhausted"}]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var fast, slow api.IngestReply
		if !api.DecodeIngestReplyFast(b, &fast) {
			return
		}
		if err := json.Unmarshal(b, &slow); err != nil {
			t.Fatalf("%q: accepted by hand, refused by encoding/json: %v", b, err)
		}
		same(t, b, fast, slow)
	})
}

func FuzzDecodeVerdictFast(f *testing.F) {
	for _, seed := range []string{
		`{"allowed":false,"bottle":"b","provider":"claude","scope":"global","scope_id":"","limit":10,"used":12,"remaining":0,"state":"cut_off","reason":"global budget exhausted"}`,
		`{}`, `{"allowed":1}`, `{"used":-5}`, `{"scope":"bottle","scope":"agent"}`,
		`{"allowed":true,"limit":100,"used":10,"held":60,"remaining":30}`, `{"held":1.5}`,
		`{"allowed":true,"limit":100,"window":"day","resets_at":"2026-11-22T00:00:00+01:00"}`,
		`{"window":"5h"}`, `{"resets_at":"tomorrow"}`, `{"resets_at":null}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var fast, slow budget.Verdict
		if !api.DecodeVerdictFast(b, &fast) {
			return
		}
		if err := json.Unmarshal(b, &slow); err != nil {
			t.Fatalf("%q: accepted by hand, refused by encoding/json: %v", b, err)
		}
		same(t, b, fast, slow)
	})
}

func same(t *testing.T, b []byte, fast, slow any) {
	t.Helper()
	if !reflect.DeepEqual(fast, slow) {
		t.Fatalf("%q:\nby hand         %+v\nby encoding/json %+v", b, fast, slow)
	}
}

// TestDecodeFastReadsWhatTheDaemonWrites: the readers take the daemon's
// own output, not only hand-written seeds.
func TestDecodeFastReadsWhatTheDaemonWrites(t *testing.T) {
	v := budget.Verdict{Allowed: true, Bottle: "b-1", Agent: "implementer", Provider: "claude",
		Scope: budget.Scope{Kind: budget.ScopeBottle, ID: "b-1"}, Limit: 1000, Used: 10, Held: 400, Remaining: 590, State: budget.Active,
		Window: "day", ResetsAt: time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)}
	var buf bytes.Buffer
	json.NewEncoder(&buf).Encode(api.IngestReply{Accepted: 2, Duplicates: 1, Verdicts: []budget.Verdict{v, v}})
	var reply api.IngestReply
	if !api.DecodeIngestReplyFast(buf.Bytes(), &reply) {
		t.Fatalf("%s: not read by hand", buf.Bytes())
	}
	if reply.Accepted != 2 || reply.Duplicates != 1 || len(reply.Verdicts) != 2 || reply.Verdicts[1] != v {
		t.Errorf("got %+v", reply)
	}
	buf.Reset()
	json.NewEncoder(&buf).Encode(v)
	var got budget.Verdict
	if !api.DecodeVerdictFast(buf.Bytes(), &got) || got != v {
		t.Errorf("%s: read %+v, want %+v", buf.Bytes(), got, v)
	}
}
