package controller

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

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
const maxIDLen = 256

// handleIngest implements POST /v1/usage: validate every report (nothing
// is stored if one is bad), register unknown bottles, commit through the
// group-commit writer, and only then count, enforce and reply.
func (s *Server) handleIngest(w http.ResponseWriter, r *http.Request) {
	wire, err := readReports(w, r)
	if err != nil {
		writeErr(w, err)
		return
	}
	peer, _ := peerFrom(r.Context())
	reports := make([]budget.Report, 0, len(wire))
	for i, in := range wire {
		rep, err := s.prepare(r.Context(), peer, in)
		if err != nil {
			if len(wire) > 1 {
				err = fmt.Errorf("report %d: %w", i+1, err)
			}
			writeErr(w, err)
			return
		}
		reports = append(reports, rep)
	}
	reply, err := s.ingest(r.Context(), reports)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, reply)
}

// readReports decodes one report, or NDJSON of many.
func readReports(w http.ResponseWriter, r *http.Request) ([]api.Report, error) {
	body := http.MaxBytesReader(w, r.Body, api.MaxIngestBytes)
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/x-ndjson" {
		b, err := io.ReadAll(body)
		if err != nil {
			return nil, jsonError(err)
		}
		one, err := decodeReport(b)
		if err != nil {
			return nil, err
		}
		return []api.Report{one}, nil
	}
	return readNDJSON(body)
}

func readNDJSON(body io.Reader) ([]api.Report, error) {
	var out []api.Report
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 64<<10), api.MaxIngestBytes)
	for line := 1; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		rep, err := decodeReport(b)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		out = append(out, rep)
	}
	if err := sc.Err(); err != nil {
		return nil, jsonError(err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: body: no reports", budget.ErrInvalid)
	}
	return out, nil
}

// prepare validates one wire report and turns it into a ledger report:
// provider attributed, raw body normalised, agent defaulted, tokens
// weighted, timestamp set.
func (s *Server) prepare(ctx context.Context, peer Peer, in api.Report) (budget.Report, error) {
	rep := in.Report
	rep.Complete = in.Complete == nil || *in.Complete
	if err := s.checkIdentity(&rep); err != nil {
		return rep, err
	}
	if err := s.checkPeerBottle(ctx, peer, rep.Bottle); err != nil {
		return rep, err
	}
	if len(in.Raw) > 0 {
		if err := s.applyRaw(&rep, in); err != nil {
			return rep, err
		}
	}
	if err := rep.Usage.Validate(); err != nil {
		return rep, err
	}
	if rep.TS.IsZero() {
		rep.TS = s.now().UTC()
	}
	s.mu.Lock()
	if b, ok := s.book.Bottle(rep.Bottle); ok {
		rep.Agent = b.AgentName(rep.Agent)
	}
	rep.Counted = rep.Usage.Counted(s.settings.WeightsFor(rep.Provider))
	s.mu.Unlock()
	return rep, nil
}

// checkIdentity validates id, bottle, agent and provider, attributing the
// provider from the upstream host when the report names none.
func (s *Server) checkIdentity(rep *budget.Report) error {
	if rep.ID == "" {
		return fmt.Errorf("%w: id: required (the upstream response id, used as the idempotency key)", budget.ErrInvalid)
	}
	if len(rep.ID) > maxIDLen {
		return fmt.Errorf("%w: id: longer than %d bytes", budget.ErrInvalid, maxIDLen)
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
		s.mu.Lock()
		rep.Provider = s.settings.ProviderForHost(hostOnly(rep.Host))
		s.mu.Unlock()
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

// checkPeerBottle refuses a container peer's report for another bottle,
// and every report of a peer whose origin is unknown.
func (s *Server) checkPeerBottle(ctx context.Context, peer Peer, bottle string) error {
	if peer.Host {
		return nil
	}
	if peer.Container == "" {
		why := peer.Unknown
		if why == "" {
			why = "no peer credentials"
		}
		return fmt.Errorf("%w: bottle: the daemon could not establish where the reporting process lives, so it may report for no bottle: %s", budget.ErrDenied, why)
	}
	own, ok := s.bottleOfContainer(ctx, peer.Container)
	if !ok {
		return fmt.Errorf("%w: bottle: the reporting container %.12s belongs to no known bottle", budget.ErrDenied, peer.Container)
	}
	if own != bottle {
		return fmt.Errorf("%w: bottle: container %.12s belongs to bottle %q and may not report for %q", budget.ErrDenied, peer.Container, own, bottle)
	}
	return nil
}

// ingest registers unknown bottles, commits the reports and applies them.
func (s *Server) ingest(ctx context.Context, reports []budget.Report) (api.IngestReply, error) {
	if err := s.registerImplicit(ctx, reports); err != nil {
		return api.IngestReply{}, err
	}
	results, err := s.cfg.Ingester.Submit(ctx, reports)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return api.IngestReply{}, fmt.Errorf("%w: request cancelled before commit", budget.ErrUnavailable)
		}
		return api.IngestReply{}, fmt.Errorf("commit reports: %w", err)
	}
	var reply api.IngestReply
	var fresh []budget.Report
	for i, res := range results {
		if res.Duplicate {
			reply.Duplicates++
			continue
		}
		reply.Accepted++
		fresh = append(fresh, reports[i])
	}
	s.apply(ctx, fresh)
	reply.Verdicts = s.verdictsFor(reports)
	s.metrics.ingested(reply.Accepted, reply.Duplicates)
	return reply, nil
}
