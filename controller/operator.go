package controller

import (
	"fmt"
	"net/http"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
)

// handleAction implements POST /v1/bottles/{slug}/actions for operators.
func (s *Server) handleAction(w http.ResponseWriter, r *http.Request) {
	var req api.ActionRequest
	if err := decodeBody(w, r, api.MaxRequestBytes, &req); err != nil {
		writeErr(w, err)
		return
	}
	kind, err := budget.ParseActionKind(req.Action)
	if err != nil {
		writeErr(w, fmt.Errorf("action: %w", err))
		return
	}
	slug := r.PathValue("slug")
	reason := req.Reason
	if reason == "" {
		reason = "by operator"
	}
	act, err := s.core.Act(r.Context(), slug, kind, reason)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, apiAction(act))
}
