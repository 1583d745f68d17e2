package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/store"
)

func appendAudits(t *testing.T, db *store.DB, n int) []budget.AuditEntry {
	t.Helper()
	var all []budget.AuditEntry
	for i := 1; i <= n; i++ {
		e, err := db.AppendAudit(context.Background(), budget.AuditEntry{
			Kind: "warn", Bottle: fmt.Sprintf("b%d", i%2), Detail: fmt.Sprintf("claude at %d%%", 80+i),
		})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, e)
	}
	return all
}

func TestAuditChainLinksAndVerifies(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	if err := db.VerifyAudit(ctx); err != nil {
		t.Errorf("VerifyAudit on an empty log: %v", err)
	}
	written := appendAudits(t, db, 5)
	for i, e := range written {
		if e.Seq != int64(i+1) || e.TS.IsZero() || len(e.Hash) != 64 {
			t.Errorf("entry %d = %+v", i, e)
		}
		if i > 0 && e.PrevHash != written[i-1].Hash {
			t.Errorf("entry %d prev_hash %s, want %s", i, e.PrevHash, written[i-1].Hash)
		}
	}
	if err := db.VerifyAudit(ctx); err != nil {
		t.Errorf("VerifyAudit: %v", err)
	}

	got, err := db.Audit(ctx, "", 0)
	if err != nil || len(got) != 5 || got[0] != written[4] {
		t.Errorf("Audit = %+v, %v; want 5 entries, newest first, as written", got, err)
	}
	got, _ = db.Audit(ctx, "b1", 2)
	if len(got) != 2 || got[0].Seq != 5 || got[1].Seq != 3 {
		t.Errorf("Audit(b1, 2) = %+v, want seq 5, 3", got)
	}
}

func TestAuditRefusesUpdates(t *testing.T) {
	db, path := openTemp(t)
	appendAudits(t, db, 1)
	_, err := rawOpen(t, path).Exec(`UPDATE audit SET detail = 'x'`)
	if err == nil {
		t.Error("UPDATE audit succeeded, want the append-only trigger to refuse it")
	}
}

func TestVerifyAuditFindsTampering(t *testing.T) {
	tests := []struct {
		name     string
		tamper   string
		wantSeq  int64
		wantGood int64 // entries that verified before the break
	}{
		{"edited detail", `UPDATE audit SET detail = 'nothing happened' WHERE seq = 3`, 3, 2},
		{"edited time", `UPDATE audit SET ts = ts + 1 WHERE seq = 2`, 2, 1},
		{"rehashed entry", `UPDATE audit SET hash = prev_hash WHERE seq = 2`, 2, 1},
		{"deleted entry", `DELETE FROM audit WHERE seq = 4`, 5, 3},
		{"edited first entry", `UPDATE audit SET detail = 'x' WHERE seq = 1`, 1, 0},
		{"edited last entry", `UPDATE audit SET detail = 'x' WHERE seq = 6`, 6, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			db, path := openTemp(t)
			appendAudits(t, db, 6)
			raw := rawOpen(t, path)
			for _, q := range []string{`DROP TRIGGER audit_no_update`, `DROP TRIGGER audit_no_delete`, tt.tamper} {
				if _, err := raw.Exec(q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			err := db.VerifyAudit(ctx)
			var ce *budget.ChainError
			if !errors.As(err, &ce) {
				t.Fatalf("VerifyAudit = %v, want a *ChainError", err)
			}
			if ce.Seq != tt.wantSeq || ce.Good != tt.wantGood {
				t.Errorf("broken at seq %d after %d good (%v), want seq %d after %d good", ce.Seq, ce.Good, err, tt.wantSeq, tt.wantGood)
			}
		})
	}
}

func TestAppendAuditRequiresKind(t *testing.T) {
	db, _ := openTemp(t)
	if _, err := db.AppendAudit(context.Background(), budget.AuditEntry{}); !errors.Is(err, budget.ErrInvalid) {
		t.Errorf("got %v, want ErrInvalid", err)
	}
}
