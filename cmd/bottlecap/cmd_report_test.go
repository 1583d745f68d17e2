package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/client/clienttest"
)

func ingestServer(t *testing.T, reply api.IngestReply) *clienttest.Server {
	t.Helper()
	srv := clienttest.NewServer(t)
	srv.Reply("POST /v1/usage", 200, reply)
	return srv
}

// sentReport decodes the one report the fake daemon received.
func sentReport(t *testing.T, srv *clienttest.Server) map[string]any {
	t.Helper()
	req := srv.Last()
	if req.Method != "POST" || req.Path != "/v1/usage" || req.ContentType != "application/json" {
		t.Fatalf("request: %s %s (%s)", req.Method, req.Path, req.ContentType)
	}
	var got map[string]any
	if err := json.Unmarshal(req.Body, &got); err != nil {
		t.Fatalf("body %s: %v", req.Body, err)
	}
	return got
}

func TestReportTokens(t *testing.T) {
	v := verdictFor("dev-1", "claude", budget.Scope{Kind: budget.ScopeBottle, ID: "dev-1"}, 1000000, 412730)
	srv := ingestServer(t, api.IngestReply{Accepted: 1, Verdicts: []budget.Verdict{v}})
	r := runAt(t, srv, "report", "--id", "msg_01", "--bottle", "dev-1", "--agent", "implementer", "--provider", "claude",
		"--host", "api.anthropic.com", "--model", "claude-sonnet-4-5", "--input", "656", "--output", "74",
		"--cache-read", "1.5k", "--cache-write", "2", "--reasoning", "3", "--incomplete", "--ts", "2026-11-21T20:00:00Z")
	wantCode(t, r, 0)
	got := sentReport(t, srv)
	want := map[string]any{
		"id": "msg_01", "bottle": "dev-1", "agent": "implementer", "provider": "claude", "host": "api.anthropic.com",
		"model": "claude-sonnet-4-5", "input_tokens": 656.0, "output_tokens": 74.0, "cache_read_tokens": 1500.0,
		"cache_write_tokens": 2.0, "reasoning_tokens": 3.0, "complete": false, "ts": "2026-11-21T20:00:00Z",
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: got %v, want %v", k, got[k], w)
		}
	}
	wantOut := `report msg_01: accepted
BOTTLE  AGENT        PROVIDER  SCOPE         USED  LIMIT  LEFT  %    ALLOWED
dev-1   implementer  claude    bottle/dev-1  413k  1M     587k  41%  yes
`
	if r.stdout != wantOut {
		t.Errorf("stdout:\n%s\nwant:\n%s", r.stdout, wantOut)
	}
}

func TestReportDefaults(t *testing.T) {
	srv := ingestServer(t, api.IngestReply{Duplicates: 1})
	before := time.Now().Add(-time.Second)
	r := runAt(t, srv, "report", "--id", "x", "--bottle", "b", "--output", "1")
	wantCode(t, r, 0)
	got := sentReport(t, srv)
	if _, ok := got["complete"]; ok {
		t.Errorf("complete sent without --incomplete: %v", got["complete"])
	}
	ts, err := time.Parse(time.RFC3339Nano, got["ts"].(string))
	if err != nil || ts.Before(before) || ts.After(time.Now()) {
		t.Errorf("ts %v (%v), want now", got["ts"], err)
	}
	if want := "report x: duplicate, already counted\n"; r.stdout != want {
		t.Errorf("stdout %q, want %q", r.stdout, want)
	}
}

func TestReportRaw(t *testing.T) {
	dir := t.TempDir()
	sse := "event: message_delta\ndata: {\"usage\":{\"output_tokens\":74}}\n\n"
	tests := []struct {
		name, content, format string
		wantRaw               any
		wantFormat            string
	}{
		{"json body", `{"usage": {"input_tokens": 656}}` + "\n", "anthropic", map[string]any{"usage": map[string]any{"input_tokens": 656.0}}, "anthropic"},
		{"sse text", sse, "", sse, "auto"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-"))
			if err := os.WriteFile(file, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			srv := ingestServer(t, api.IngestReply{Accepted: 1})
			args := []string{"report", "--id", "x", "--bottle", "b", "--raw", file}
			if tt.format != "" {
				args = append(args, "--format", tt.format)
			}
			wantCode(t, runAt(t, srv, args...), 0)
			got := sentReport(t, srv)
			if g, _ := json.Marshal(got["raw"]); string(g) != mustJSON(t, tt.wantRaw) || got["format"] != tt.wantFormat {
				t.Errorf("raw %s format %v, want %s %s", g, got["format"], mustJSON(t, tt.wantRaw), tt.wantFormat)
			}
		})
	}
}

func TestReportRawStdinJSON(t *testing.T) {
	srv := ingestServer(t, api.IngestReply{Accepted: 1})
	r := runCLI(t, map[string]string{"_stdin": `{"usage":{"prompt_tokens":3}}`},
		"report", "--id", "x", "--bottle", "b", "--raw", "-", "--format", "openai-chat", "--socket", srv.Socket, "--json")
	wantCode(t, r, 0)
	if got := sentReport(t, srv)["raw"]; mustJSON(t, got) != `{"usage":{"prompt_tokens":3}}` {
		t.Errorf("raw %v", got)
	}
	if !strings.HasPrefix(r.stdout, "{\n  \"accepted\": 1,") {
		t.Errorf("--json stdout:\n%s", r.stdout)
	}
}

func TestReportRawMissingFile(t *testing.T) {
	srv := ingestServer(t, api.IngestReply{Accepted: 1})
	r := runAt(t, srv, "report", "--id", "x", "--bottle", "b", "--raw", filepath.Join(t.TempDir(), "nope"))
	wantCode(t, r, 1)
	if !strings.Contains(r.stderr, "read --raw") {
		t.Errorf("stderr %q", r.stderr)
	}
}

func TestReportRejected(t *testing.T) {
	srv := clienttest.NewServer(t)
	srv.Fail("POST /v1/usage", 403, `report for bottle "b" from a container of bottle "c"`)
	r := runAt(t, srv, "report", "--id", "x", "--bottle", "b", "--input", "1")
	wantCode(t, r, 1)
	if !strings.Contains(r.stderr, `bottlecap report: report for bottle "b" from a container of bottle "c"`) {
		t.Errorf("stderr %q", r.stderr)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
