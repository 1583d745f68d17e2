package controller_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
)

func TestIngestIsIdempotentOnID(t *testing.T) {
	d := startDaemon(t, nil, nil)
	first := d.ingest(report("msg_1", "dev-1", "impl", "claude", 100), report("msg_2", "dev-1", "impl", "claude", 50))
	again := d.ingest(report("msg_1", "dev-1", "impl", "claude", 100), report("msg_3", "dev-1", "impl", "claude", 5))
	if first.Accepted != 2 || first.Duplicates != 0 || again.Accepted != 1 || again.Duplicates != 1 {
		t.Errorf("got %+v then %+v, want 2/0 then 1/1", first, again)
	}
	if v := d.verdict("dev-1", "impl", "claude"); v.Used != 155 {
		t.Errorf("got used %d, want 155 (the retried report counted once)", v.Used)
	}
	totals, err := d.db.Totals(context.Background())
	if err != nil || len(totals) != 1 || totals[0].Counted != 155 || totals[0].Reports != 3 {
		t.Errorf("got ledger totals %+v (%v), want one total of 155 over 3 reports", totals, err)
	}
}

func TestIngestRegistersUnknownBottlesOnTheFly(t *testing.T) {
	d := startDaemon(t, nil, nil)
	d.ingest(report("msg_1", "stray-9", "", "codex", 10))
	b, err := d.c.Bottle(context.Background(), "stray-9")
	if err != nil {
		t.Fatal(err)
	}
	if !b.Implicit || b.State != budget.Active || b.Usage["codex"] != 10 {
		t.Errorf("got %+v, want an implicit active bottle with 10 codex tokens", b)
	}
}

func TestIngestAttributesProviderFromHost(t *testing.T) {
	d := startDaemon(t, nil, nil)
	r := report("msg_1", "dev-1", "", "", 10)
	r.Host = "API.OpenAI.com:443"
	reply := d.ingest(r)
	if len(reply.Verdicts) != 1 || reply.Verdicts[0].Provider != "codex" {
		t.Errorf("got verdicts %+v, want one for codex", reply.Verdicts)
	}
}

func TestIngestRejectsBadInputAndStoresNothing(t *testing.T) {
	tests := []struct {
		name, contentType, body string
		status                  int
		wantInError             string
	}{
		{"missing id", "", `{"bottle":"b1","provider":"claude","input_tokens":1}`, 400, "id: required"},
		{"bad bottle slug", "", `{"id":"m","bottle":"../etc","provider":"claude"}`, 400, "bottle"},
		{"no provider and unknown host", "", `{"id":"m","bottle":"b1","host":"llm.example"}`, 400, "provider: missing"},
		{"negative tokens", "", `{"id":"m","bottle":"b1","provider":"claude","output_tokens":-3}`, 400, "output_tokens"},
		{"tokens of the wrong type", "", `{"id":"m","bottle":"b1","provider":"claude","input_tokens":"many"}`, 400, "input_tokens"},
		{"unknown field", "", `{"id":"m","bottle":"b1","provider":"claude","tokens":5}`, 400, `unknown field \"tokens\"`},
		{"malformed json", "", `{"id":`, 400, "body"},
		{"empty body", "", ``, 400, "empty"},
		{"raw without a parser", "", `{"id":"m","bottle":"b1","provider":"claude","raw":{"usage":{}}}`, 400, "raw"},
		{"ndjson bad line names it", "application/x-ndjson",
			"{\"id\":\"a\",\"bottle\":\"b1\",\"provider\":\"claude\"}\n{\"id\":\"b\",\"bottle\":\"b1\"\n", 400, "line 2"},
		{"ndjson bad report names it", "application/x-ndjson",
			"{\"id\":\"a\",\"bottle\":\"b1\",\"provider\":\"claude\"}\n{\"bottle\":\"b1\",\"provider\":\"claude\"}\n", 400, "report 2: invalid: id"},
		{"ndjson empty", "application/x-ndjson", "\n\n", 400, "no reports"},
		{"too large", "", `{"id":"` + strings.Repeat("x", api.MaxIngestBytes) + `"}`, 413, "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := startDaemon(t, nil, nil)
			status, body := d.raw("POST", "/v1/usage", tt.contentType, tt.body)
			if status != tt.status || !strings.Contains(body, tt.wantInError) {
				t.Errorf("got %d %s, want %d naming %q", status, body, tt.status, tt.wantInError)
			}
			totals, err := d.db.Totals(context.Background())
			if err != nil || len(totals) != 0 {
				t.Errorf("got totals %+v (%v), want nothing stored", totals, err)
			}
		})
	}
}

func TestNDJSONBatchCommitsAll(t *testing.T) {
	d := startDaemon(t, nil, nil)
	var b strings.Builder
	for i := range 100 {
		b.WriteString(`{"id":"m` + string(rune('a'+i%26)) + strings.Repeat("x", i) + `","bottle":"b1","agent":"a","provider":"claude","output_tokens":2}` + "\n")
	}
	status, body := d.raw("POST", "/v1/usage", "application/x-ndjson", b.String())
	if status != http.StatusOK || !strings.Contains(body, `"accepted":100`) {
		t.Fatalf("got %d %s, want 100 accepted", status, body)
	}
	if v := d.verdict("b1", "a", "claude"); v.Used != 200 {
		t.Errorf("got used %d, want 200", v.Used)
	}
}

func TestVerdictQueryErrors(t *testing.T) {
	d := startDaemon(t, nil, nil)
	tests := []struct{ name, query, want string }{
		{"no bottle", "provider=claude", "bottle"},
		{"no provider", "bottle=b1", "provider"},
		{"bad estimate", "bottle=b1&provider=claude&estimate=lots", "estimate"},
		{"negative estimate", "bottle=b1&provider=claude&estimate=-1", "estimate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := d.raw("GET", "/v1/verdict?"+tt.query, "", "")
			if status != 400 || !strings.Contains(body, tt.want) {
				t.Errorf("got %d %s, want 400 naming %s", status, body, tt.want)
			}
		})
	}
}

func TestVerdictEstimate(t *testing.T) {
	d := startDaemon(t, nil, nil)
	d.register("b1", api.BottleRequest{Budget: budget.Limits{"claude": budget.Lifetime(1000)}})
	d.ingest(report("m1", "b1", "", "claude", 600))
	status, body := d.raw("GET", "/v1/verdict?bottle=b1&provider=claude&estimate=401", "", "")
	if status != 200 || !strings.Contains(body, `"allowed":false`) || !strings.Contains(body, `"remaining":400`) {
		t.Errorf("got %d %s, want denied with 400 remaining", status, body)
	}
	status, body = d.raw("GET", "/v1/verdict?bottle=b1&provider=claude&estimate=400", "", "")
	if status != 200 || !strings.Contains(body, `"allowed":true`) {
		t.Errorf("got %d %s, want allowed", status, body)
	}
}
