package controller

import (
	"net/http"
	"os"

	"github.com/bot-bottle/bottlecap/api"
)

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	st := api.Status{
		Version: s.cfg.Version, PID: os.Getpid(), StartedAt: s.started,
		UptimeSeconds: s.now().Sub(s.started).Seconds(),
		Store:         s.cfg.StorePath, Socket: s.cfg.Socket,
	}
	if err := s.core.Status(r.Context(), &st); err != nil {
		writeErr(w, err)
		return
	}
	if s.cfg.Docker != nil {
		st.Docker = s.cfg.Docker(r.Context())
	}
	if s.cfg.Fleet != nil {
		fl := s.cfg.Fleet(r.Context())
		fl.Budgets = s.core.FleetStates()
		if !s.core.FleetReachable() && fl.Reachable {
			fl.Reachable, fl.Error = false, "Postgres did not answer this host's last lease call"
		}
		st.Fleet = &fl
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) handleAudit(w http.ResponseWriter, r *http.Request) {
	limit, err := queryInt(r, "limit", 100)
	if err != nil {
		writeErr(w, err)
		return
	}
	entries, err := s.core.Audit(r.Context(), r.URL.Query().Get("bottle"), limit)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, entries)
}

// handleAuditVerify checks the whole hash chain: 200 when it holds, 409
// naming the first broken entry when it does not.
func (s *Server) handleAuditVerify(w http.ResponseWriter, r *http.Request) {
	v, err := s.core.VerifyAudit(r.Context())
	if err != nil {
		writeErr(w, err) // the store could not be read: no verdict on the chain
		return
	}
	status := http.StatusOK
	if !v.OK {
		status = http.StatusConflict
	}
	writeJSON(w, status, v)
}
