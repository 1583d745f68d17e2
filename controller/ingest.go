package controller

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
)

// RawParser normalises a provider response body (JSON or SSE text) in the
// given format ("auto" to detect) into usage, per SPEC section 4.
type RawParser func(format string, body []byte) (RawUsage, error)

// RawUsage is what a raw body yields.
type RawUsage struct {
	Usage    budget.Usage
	Complete bool
	Model    string
	ID       string
}

// maxIDLen bounds idempotency keys; provider ids are far shorter.
// maxLabelLen bounds a report's model and host, which the dashboard and
// the ledger show as they came.
const (
	maxIDLen    = 256
	maxLabelLen = 256
)

// The ledger stores times as int64 unix nanoseconds, which reach from
// 1677-09-21 to 2262-04-11; a ts outside is refused, not stored wrapped.
var (
	minTS = time.Unix(0, math.MinInt64+1).UTC()
	maxTS = time.Unix(0, math.MaxInt64).UTC()
)

// handleIngest implements POST /v1/usage: validate the reports as the body
// streams in, stopping at the first bad one (nothing is stored if one is
// bad), register unknown bottles, commit through the group-commit writer,
// and only then count, enforce and reply.
func (s *Server) handleIngest(w http.ResponseWriter, r *http.Request) {
	arrived := time.Now()
	release, err := s.admitIngest(r)
	if err != nil {
		writeErr(w, err)
		return
	}
	reports, allowances, err := s.readReports(w, r)
	release()
	rc := http.NewResponseController(w)
	if err != nil {
		// Read no more of a refused body: net/http would otherwise try to
		// drain it before replying, waiting on a client that may never
		// end it. The connection is closed after the reply instead.
		_ = rc.SetReadDeadline(time.Now())
		writeErr(w, err)
		return
	}
	// The body is in; what is left is the wait for the commit, which the
	// server's read timeout (meant for slow bodies) must not cancel.
	_ = rc.SetReadDeadline(time.Time{})
	defer func() { s.metrics.ingestSeconds.Observe(time.Since(arrived).Seconds()) }() // after the reply is written
	reply, err := s.core.Ingest(r.Context(), reports, allowances)
	if err != nil {
		s.noteLedgerLost(err)
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, reply)
}

// noteLedgerLost logs, once, that the ledger's files were deleted under the
// daemon: every report is refused from then on, and only the operator can
// end that, by restarting the daemon.
func (s *Server) noteLedgerLost(err error) {
	if errors.Is(err, budget.ErrLedgerLost) {
		s.ledgerLost.Do(func() {
			s.log.Error("refusing every write until the daemon is restarted: the ledger's files were deleted or replaced under it; restart it (sidecars keep their reports and retry)", "err", err)
		})
	}
}

// errTooLarge is the class of requests past a documented cap (413).
var errTooLarge = errors.New("request too large")

// admitIngest refuses a body announced over the cap before reading it, and
// waits until the body fits the bytes of ingest in flight, so that a burst
// of large bodies is decoded a few at a time rather than all at once. The
// returned func gives the bytes back.
func (s *Server) admitIngest(r *http.Request) (func(), error) {
	if r.ContentLength > api.MaxIngestBytes {
		return nil, fmt.Errorf("%w: body: %d bytes, larger than %d bytes: send fewer reports per request", errTooLarge, r.ContentLength, api.MaxIngestBytes)
	}
	n := r.ContentLength
	if n < 0 { // chunked: its length is only known at the end
		n = api.MaxIngestBytes
	}
	n = max(n, 1)
	if err := s.ingestBytes.Acquire(r.Context(), n); err != nil {
		return nil, fmt.Errorf("%w: request cancelled while waiting for other ingests to be read", budget.ErrUnavailable)
	}
	return func() { s.ingestBytes.Release(n) }, nil
}

// readReports decodes and validates one report, or NDJSON of many, and
// returns with them the allowance each names (nil when none names one).
func (s *Server) readReports(w http.ResponseWriter, r *http.Request) ([]budget.Report, []string, error) {
	body := http.MaxBytesReader(w, r.Body, api.MaxIngestBytes)
	peer, _ := peerFrom(r.Context())
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt == "application/x-ndjson" {
		return s.readNDJSON(r.Context(), peer, bufio.NewReaderSize(body, lineBufferSize(r.ContentLength)))
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return nil, nil, jsonError(err)
	}
	in, err := decodeReport(b)
	if err != nil {
		return nil, nil, err
	}
	rep, err := s.prepare(r.Context(), peer, in)
	if err != nil {
		return nil, nil, err
	}
	var allowances []string
	if in.Allowance != "" {
		allowances = []string{in.Allowance}
	}
	return []budget.Report{rep}, allowances, nil
}

// lineBufferSize is the read buffer for an NDJSON body of length n (-1
// when chunked): the body itself when it is small, else 64 KiB. Lines
// longer than the buffer are still read whole (readLine); a buffer larger
// than the body would only be garbage, and with the daemon's GOGC=400
// every byte of it live during a collection costs five of resident memory.
func lineBufferSize(n int64) int {
	const most = 64 << 10
	if n < 0 || n > most {
		return most
	}
	return max(int(n), 16) // bufio's own minimum
}

// readNDJSON reads one line at a time and validates each report as it
// comes: a bad line ends the request without reading the rest of the body,
// and memory holds only the validated reports (at most MaxIngestReports)
// and one line. allowances, index for index, are the allowances the
// reports name; nil when none names one.
func (s *Server) readNDJSON(ctx context.Context, peer Peer, br *bufio.Reader) ([]budget.Report, []string, error) {
	var out []budget.Report
	var allowances []string
	var line []byte
	for n := 1; ; n++ {
		var err error
		line, err = readLine(br, line[:0])
		if err != nil && err != io.EOF {
			return nil, nil, jsonError(err)
		}
		if b := bytes.TrimSpace(line); len(b) > 0 {
			if len(out) == s.limits.MaxIngestReports {
				return nil, nil, fmt.Errorf("%w: body: more than %d reports: send at most %d per request", errTooLarge, s.limits.MaxIngestReports, s.limits.MaxIngestReports)
			}
			rep, allowance, err := s.prepareLine(ctx, peer, b, n, len(out)+1)
			if err != nil {
				return nil, nil, err
			}
			if allowance != "" && allowances == nil {
				allowances = make([]string, len(out), cap(out))
			}
			out = append(out, rep)
			if allowances != nil {
				allowances = append(allowances, allowance)
			}
		}
		if err == io.EOF {
			break
		}
	}
	if len(out) == 0 {
		return nil, nil, fmt.Errorf("%w: body: no reports", budget.ErrInvalid)
	}
	return out, allowances, nil
}

// prepareLine decodes and validates the i-th report, on line n, and
// returns it with the allowance it names.
func (s *Server) prepareLine(ctx context.Context, peer Peer, b []byte, n, i int) (budget.Report, string, error) {
	in, err := decodeReport(b)
	if err != nil {
		return budget.Report{}, "", fmt.Errorf("line %d: %w", n, err)
	}
	rep, err := s.prepare(ctx, peer, in)
	if err != nil {
		return budget.Report{}, "", fmt.Errorf("report %d: %w", i, err)
	}
	return rep, in.Allowance, nil
}

// readLine appends the next line, newline included, to buf. io.EOF comes
// with the last line when the body does not end in a newline; any other
// error (the size cap, a read timeout) is the body's, never a truncated
// line's JSON error.
func readLine(br *bufio.Reader, buf []byte) ([]byte, error) {
	for {
		chunk, err := br.ReadSlice('\n')
		buf = append(buf, chunk...)
		if err != bufio.ErrBufferFull {
			return buf, err
		}
	}
}

// prepare validates one wire report and turns it into a ledger report:
// provider attributed, raw body normalised, agent defaulted, tokens
// weighted, timestamp set. Everything that can refuse a report is checked
// here, before anything is registered or stored, so a refused request
// changes nothing.
func (s *Server) prepare(ctx context.Context, peer Peer, in api.Report) (budget.Report, error) {
	rep := in.Report
	rep.Complete = in.Complete == nil || *in.Complete
	if err := s.checkIdentity(&rep); err != nil {
		return rep, err
	}
	if err := s.checkPeerBottle(ctx, peer, rep.Bottle, "report for"); err != nil {
		return rep, err
	}
	if len(in.Raw) > 0 {
		if err := s.applyRaw(&rep, in); err != nil {
			return rep, err
		}
	}
	if err := checkLabels(rep); err != nil {
		return rep, err
	}
	if in.Allowance != "" {
		if err := checkText("allowance", in.Allowance, maxIDLen); err != nil {
			return rep, err
		}
	}
	if err := rep.Usage.Validate(); err != nil {
		if len(in.Raw) > 0 {
			err = fmt.Errorf("raw: %w", err) // the counts came from the body, not the client's fields
		}
		return rep, err
	}
	if err := s.checkTS(&rep); err != nil {
		return rep, err
	}
	if err := s.weigh(&rep); err != nil {
		return rep, err
	}
	// The ledger's own checks, so that the writer cannot refuse a report
	// after its bottle was registered.
	return rep, budget.ValidateReports([]budget.Report{rep})
}

// weigh resolves the agent and the counted tokens, refusing a report whose
// count would take the provider's host-wide total (the largest counter it
// adds to) past budget.MaxCounted.
func (s *Server) weigh(rep *budget.Report) error {
	return s.core.Weigh(rep)
}

// checkTS refuses a time the ledger cannot store and brings one in the
// future back to the time of receipt: a clock ahead (or a peer lying)
// would otherwise inflate burn rates until that time comes. A report
// without a time is stamped with the time of receipt.
func (s *Server) checkTS(rep *budget.Report) error {
	now := s.now().UTC()
	switch {
	case rep.TS.IsZero():
		rep.TS = now
	case rep.TS.Before(minTS) || rep.TS.After(maxTS):
		return fmt.Errorf("%w: ts: %s is outside the times the ledger can store (%s to %s)",
			budget.ErrInvalid, rep.TS.Format(time.RFC3339), minTS.Format(time.RFC3339), maxTS.Format(time.RFC3339))
	case rep.TS.After(now):
		rep.TS = now
	}
	return nil
}

// checkLabels bounds a report's model and host, which reach the ledger
// and the operator's screen as the peer wrote them.
func checkLabels(rep budget.Report) error {
	if err := checkText("model", rep.Model, maxLabelLen); err != nil {
		return err
	}
	return checkText("host", rep.Host, maxLabelLen)
}

// checkText refuses text longer than max bytes or not valid UTF-8. JSON
// decoding turns invalid bytes into U+FFFD, so distinct ids would collapse
// into one: a U+FFFD is refused too.
func checkText(field, v string, max int) error {
	if len(v) > max {
		return fmt.Errorf("%w: %s: longer than %d bytes", budget.ErrInvalid, field, max)
	}
	if !utf8.ValidString(v) || strings.ContainsRune(v, utf8.RuneError) {
		return fmt.Errorf("%w: %s: not valid UTF-8 (or holds U+FFFD, which stands for bytes that were not)", budget.ErrInvalid, field)
	}
	return nil
}

// checkIdentity validates id, bottle, agent and provider, attributing the
// provider from the upstream host when the report names none.
func (s *Server) checkIdentity(rep *budget.Report) error {
	if rep.ID == "" {
		return fmt.Errorf("%w: id: required (the upstream response id, used as the idempotency key)", budget.ErrInvalid)
	}
	if err := checkText("id", rep.ID, maxIDLen); err != nil {
		return err
	}
	if err := budget.ValidateSlug("bottle", rep.Bottle); err != nil {
		return err
	}
	if rep.Agent != "" {
		if err := budget.ValidateName("agent", rep.Agent); err != nil {
			return err
		}
	}
	if rep.Provider == "" {
		rep.Provider = s.core.ProviderForHost(hostOnly(rep.Host))
		if rep.Provider == "" {
			return fmt.Errorf("%w: provider: missing, and host %q is not in the settings' providers table", budget.ErrInvalid, rep.Host)
		}
	}
	return budget.ValidateName("provider", rep.Provider)
}

// applyRaw normalises a raw provider body into the report's counts.
func (s *Server) applyRaw(rep *budget.Report, in api.Report) error {
	if rep.Usage != (budget.Usage{}) {
		return fmt.Errorf("%w: raw: give either raw or the token fields, not both", budget.ErrInvalid)
	}
	if s.cfg.RawParser == nil {
		return fmt.Errorf("%w: raw: this daemon cannot parse raw bodies; send the token fields", budget.ErrInvalid)
	}
	body := []byte(in.Raw)
	var text string
	if json.Unmarshal(in.Raw, &text) == nil {
		body = []byte(text) // a JSON string holds the body text (SSE)
	}
	format := in.Format
	if format == "" {
		format = "auto"
	}
	u, err := s.cfg.RawParser(format, body)
	if err != nil {
		return fmt.Errorf("raw: %w", err)
	}
	rep.Usage = u.Usage
	rep.Complete = rep.Complete && u.Complete
	if rep.Model == "" {
		rep.Model = u.Model
	}
	return nil
}

// checkPeerBottle refuses a container peer's report (or allowance, or
// event stream: what, as "report for") for another bottle, and every one
// of a peer whose origin is unknown. A host process may act for any
// bottle.
func (s *Server) checkPeerBottle(ctx context.Context, peer Peer, bottle, what string) error {
	if peer.Host {
		return nil
	}
	if peer.Container == "" {
		why := peer.Unknown
		if why == "" {
			why = "no peer credentials"
		}
		return fmt.Errorf("%w: bottle: the daemon could not establish where the calling process lives, so it may %s no bottle: %s (call from a process that stays connected, on the host or in a bottle's container; the daemon needs Linux 6.5 or later)", budget.ErrDenied, what, why)
	}
	own, ok := s.core.BottleOfContainer(ctx, peer.Container)
	if !ok {
		return fmt.Errorf("%w: bottle: the calling container %.12s belongs to no known bottle, so it may %s none (label it bot-bottle.bottle=<slug>, or list it in the bottle's registration containers)", budget.ErrDenied, peer.Container, what)
	}
	if own != bottle {
		return fmt.Errorf("%w: bottle: container %.12s belongs to bottle %q and may not %s %q", budget.ErrDenied, peer.Container, own, what, bottle)
	}
	return nil
}
