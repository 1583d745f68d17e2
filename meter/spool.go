package meter

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/bot-bottle/bottlecap/api"
)

// spool is the queue's append-only file: one JSON report per line, written
// before the report is queued and cleared once the daemon has acknowledged
// everything. Replaying it after a crash may resend acknowledged reports;
// the daemon counts them once (ids are idempotency keys). Writes are not
// fsynced: the spool survives a meter restart or crash, not a power loss.
type spool struct {
	path  string
	f     *os.File
	lines int // lines in the file, to know when to compact it
}

// openSpool opens (or creates) the spool at path and returns the reports it
// still holds, each id once, in order. A torn last line (a crash mid-write)
// is skipped.
func openSpool(path string) (*spool, []api.Report, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, nil, fmt.Errorf("spool directory: %w", err)
	}
	reports, err := readSpool(path)
	if err != nil {
		return nil, nil, err
	}
	s := &spool{path: path}
	if err := s.rewrite(reports); err != nil {
		return nil, nil, err
	}
	return s, reports, nil
}

// readSpool reads the reports of the spool file, if any.
func readSpool(path string) ([]api.Report, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open spool: %w", err)
	}
	defer f.Close()
	var out []api.Report
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var r api.Report
		if json.Unmarshal(sc.Bytes(), &r) != nil || r.ID == "" || seen[r.ID] {
			continue // a torn line, or a report already taken
		}
		seen[r.ID] = true
		out = append(out, r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read spool %s: %w", path, err)
	}
	return out, nil
}

// append writes one report.
func (s *spool) append(r api.Report) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode report %s: %w", r.ID, err)
	}
	if _, err := s.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("write spool: %w", err)
	}
	s.lines++
	return nil
}

// compact rewrites the spool to hold exactly pending when it has grown well
// beyond it; an empty queue truncates it.
func (s *spool) compact(pending []api.Report) error {
	if len(pending) == 0 && s.lines > 0 {
		if err := s.f.Truncate(0); err != nil {
			return fmt.Errorf("truncate spool: %w", err)
		}
		s.lines = 0
		return nil
	}
	if s.lines < 1024 || s.lines < 4*len(pending) {
		return nil
	}
	return s.rewrite(pending)
}

// rewrite replaces the file with one holding reports (a new file renamed
// over the old, so a crash leaves one or the other) and reopens it.
func (s *spool) rewrite(reports []api.Report) error {
	tmp := s.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	for i := range reports {
		if err := enc.Encode(reports[i]); err != nil {
			f.Close()
			return fmt.Errorf("spool: %w", err)
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("spool: %w", err)
	}
	f.Close()
	if err := os.Rename(tmp, s.path); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	return s.reopen(len(reports))
}

// reopen opens the spool file for appending.
func (s *spool) reopen(lines int) error {
	if s.f != nil {
		s.f.Close()
	}
	f, err := os.OpenFile(s.path, os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	s.f, s.lines = f, lines
	return nil
}

// close closes the file; the reports in it wait for the next start.
func (s *spool) close() error {
	return s.f.Close()
}
