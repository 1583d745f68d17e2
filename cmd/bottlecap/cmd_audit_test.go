package main

import (
	"strings"
	"testing"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/client/clienttest"
)

func TestAudit(t *testing.T) {
	srv := clienttest.NewServer(t)
	srv.Reply("GET /v1/audit", 200, []api.AuditEntry{
		{Seq: 2, TS: ts0, Kind: "cutoff", Bottle: "dev-1", Detail: "bottle budget dev-1 exhausted", Hash: "bb", PrevHash: "aa"},
		{Seq: 1, TS: ts0, Kind: "settings", Detail: "loaded", Hash: "aa"},
	})
	r := runAt(t, srv, "audit", "--bottle", "dev-1", "--limit", "5")
	wantCode(t, r, 0)
	if got := srv.Last().Query; got != "bottle=dev-1&limit=5" {
		t.Errorf("query %q", got)
	}
	want := `SEQ  TIME                  KIND      BOTTLE  DETAIL
2    2026-11-21T20:00:00Z  cutoff    dev-1   bottle budget dev-1 exhausted
1    2026-11-21T20:00:00Z  settings  -       loaded
`
	if r.stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", r.stdout, want)
	}
	r = runAt(t, srv, "audit", "--json")
	wantCode(t, r, 0)
	if !strings.Contains(r.stdout, "\"prev_hash\": \"aa\"") {
		t.Errorf("--json:\n%s", r.stdout)
	}
}

func TestAuditVerify(t *testing.T) {
	srv := clienttest.NewServer(t)
	srv.Reply("GET /v1/audit/verify", 200, api.AuditVerify{OK: true, Entries: 42})
	r := runAt(t, srv, "audit", "verify")
	wantCode(t, r, 0)
	if want := "audit log intact: 42 entries, hash chain verified\n"; r.stdout != want {
		t.Errorf("stdout %q, want %q", r.stdout, want)
	}
}

func TestAuditVerifyBroken(t *testing.T) {
	srv := clienttest.NewServer(t)
	srv.Reply("GET /v1/audit/verify", 409, api.AuditVerify{Entries: 17, Error: "entry 18: prev_hash does not match entry 17"})
	r := runAt(t, srv, "audit", "verify")
	wantCode(t, r, 1)
	want := "bottlecap audit verify: the audit log's hash chain is broken after 17 good entries: entry 18: prev_hash does not match entry 17\n"
	if r.stderr != want {
		t.Errorf("stderr %q, want %q", r.stderr, want)
	}
	r = runAt(t, srv, "audit", "verify", "--json")
	wantCode(t, r, 1)
	if !strings.Contains(r.stdout, "\"ok\": false") {
		t.Errorf("--json stdout:\n%s", r.stdout)
	}
}
