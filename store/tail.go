package store

import (
	"sync"

	"github.com/bot-bottle/bottlecap/budget"
)

// tailSize is how many of the latest committed reports the ledger keeps
// in memory: about 2 MB, a second and more of the fastest ingest, so a
// fleet shipper that keeps up never reads SQLite.
const tailSize = 8192

// committedTail is the latest committed reports with their seqs, which
// are contiguous, for ReportsAfter. Reading them back from SQLite costs
// the daemon about as much as a tenth of ingesting them (make bench:
// fleet_local_ingest_ratio); the append path has them in memory anyway.
type committedTail struct {
	mu    sync.Mutex
	keep  bool               // only a fleet member keeps one (DB.KeepCommittedTail)
	ring  []budget.SeqReport // tailSize slots once allocated
	start int                // the slot of the oldest held
	n     int                // how many are held
}

// add appends a commit's stored reports, in seq order. A commit that does
// not follow the last one held (which only the first commit after a
// reopen does) starts the tail afresh.
func (t *committedTail) add(rs []budget.SeqReport) {
	if len(rs) == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.keep {
		return
	}
	if t.ring == nil {
		t.ring = make([]budget.SeqReport, tailSize)
	}
	if t.n > 0 && rs[0].Seq != t.first()+int64(t.n) {
		t.start, t.n = 0, 0
	}
	if len(rs) > tailSize {
		rs = rs[len(rs)-tailSize:]
		t.start, t.n = 0, 0
	}
	for _, r := range rs {
		if t.n == tailSize {
			t.ring[t.start] = budget.SeqReport{} // let its strings go
			t.start = (t.start + 1) % tailSize
			t.n--
		}
		t.ring[(t.start+t.n)%tailSize] = r
		t.n++
	}
}

// first is the seq of the oldest report held (t.n > 0).
func (t *committedTail) first() int64 { return t.ring[t.start].Seq }

// after returns up to limit held reports with a seq above after, and true,
// when the tail holds everything committed after it; false sends the
// caller to SQLite (the tail is empty, or after is older than it).
func (t *committedTail) after(after int64, limit int) ([]budget.SeqReport, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n == 0 || after < t.first()-1 {
		return nil, false
	}
	skip := after - (t.first() - 1)
	if skip >= int64(t.n) {
		return nil, true
	}
	count := min(t.n-int(skip), limit)
	out := make([]budget.SeqReport, count)
	for i := range out {
		out[i] = t.ring[(t.start+int(skip)+i)%tailSize]
	}
	return out, true
}

// held is how many reports the tail holds.
func (t *committedTail) held() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n
}
