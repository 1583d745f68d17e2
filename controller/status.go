package controller

import (
	"errors"
	"net/http"
	"os"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
)

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	st := api.Status{
		Version: s.cfg.Version, PID: os.Getpid(), StartedAt: s.started,
		UptimeSeconds: s.now().Sub(s.started).Seconds(),
		Store:         s.cfg.StorePath, Socket: s.cfg.Socket,
	}
	if err := s.cfg.Ledger.Writable(r.Context()); err != nil {
		st.StoreReadOnly, st.StoreError = true, err.Error()
	}
	s.core.Snapshot(&st)
	totals, err := s.cfg.Ledger.Totals(r.Context())
	if err != nil {
		writeErr(w, err)
		return
	}
	for _, t := range totals {
		st.Reports = budget.SatAdd(st.Reports, t.Reports)
	}
	pending, err := s.cfg.Ledger.Actions(r.Context(), budget.StatusPending)
	if err != nil {
		writeErr(w, err)
		return
	}
	st.PendingActions = len(pending)
	if s.cfg.Docker != nil {
		st.Docker = s.cfg.Docker(r.Context())
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) handleAudit(w http.ResponseWriter, r *http.Request) {
	limit, err := queryInt(r, "limit", 100)
	if err != nil {
		writeErr(w, err)
		return
	}
	entries, err := s.cfg.Ledger.Audit(r.Context(), r.URL.Query().Get("bottle"), limit)
	if err != nil {
		writeErr(w, err)
		return
	}
	if entries == nil {
		entries = []budget.AuditEntry{} // an empty log is [], not null
	}
	writeJSON(w, http.StatusOK, entries)
}

// handleAuditVerify checks the whole hash chain: 200 when it holds, 409
// naming the first broken entry when it does not.
func (s *Server) handleAuditVerify(w http.ResponseWriter, r *http.Request) {
	if err := s.cfg.Ledger.VerifyAudit(r.Context()); err != nil {
		var ce *budget.ChainError
		if !errors.As(err, &ce) {
			writeErr(w, err) // the store could not be read: no verdict on the chain
			return
		}
		writeJSON(w, http.StatusConflict, api.AuditVerify{OK: false, Entries: ce.Good, Error: err.Error()})
		return
	}
	entries, err := s.cfg.Ledger.Audit(r.Context(), "", 1)
	if err != nil {
		writeErr(w, err)
		return
	}
	v := api.AuditVerify{OK: true}
	if len(entries) > 0 {
		v.Entries = entries[0].Seq
	}
	writeJSON(w, http.StatusOK, v)
}
