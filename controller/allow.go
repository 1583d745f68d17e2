package controller

import (
	"context"
	"net/http"

	"github.com/bot-bottle/bottlecap/api"
)

// handleAllow implements POST /v1/allowances (SPEC section 11): open an
// allowance, or extend and renew one (see Core.Allow). Any peer that may
// report for the bottle may ask: a process in a container only for its
// own bottle.
func (s *Server) handleAllow(w http.ResponseWriter, r *http.Request) {
	var req api.AllowanceRequest
	if err := decodeBody(w, r, api.MaxRequestBytes, &req); err != nil {
		writeErr(w, err)
		return
	}
	if err := checkAllowanceRequest(req); err != nil {
		writeErr(w, err)
		return
	}
	bottle := req.Bottle
	if req.ID != "" {
		var err error
		if bottle, err = s.core.AllowanceBottle(req.ID); err != nil {
			writeErr(w, err)
			return
		}
	}
	if err := s.checkAllowancePeer(r.Context(), bottle); err != nil {
		writeErr(w, err)
		return
	}
	a, err := s.core.AllowWaiting(r.Context(), req)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, a)
}

// handleRelease implements DELETE /v1/allowances/{id}: what the allowance
// holds is given back at once.
func (s *Server) handleRelease(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	bottle, err := s.core.AllowanceBottle(id)
	if err != nil {
		writeErr(w, err)
		return
	}
	if err := s.checkAllowancePeer(r.Context(), bottle); err != nil {
		writeErr(w, err)
		return
	}
	if err := s.core.Release(id); err != nil {
		writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// checkAllowancePeer applies the ingest's rule to an allowance's bottle.
func (s *Server) checkAllowancePeer(ctx context.Context, bottle string) error {
	peer, _ := peerFrom(ctx)
	return s.checkPeerBottle(ctx, peer, bottle, "hold allowances for")
}
