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
	if err := s.checkAction(slug, kind); err != nil {
		writeErr(w, err)
		return
	}
	reason := req.Reason
	if reason == "" {
		reason = "by operator"
	}
	act, err := s.acts.start(r.Context(), slug, kind, reason, true)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, apiAction(act))
}

// checkAction refuses actions that make no sense in the bottle's state.
func (s *Server) checkAction(slug string, kind budget.ActionKind) error {
	s.mu.Lock()
	b, ok := s.book.Bottle(slug)
	s.mu.Unlock()
	switch {
	case !ok:
		return fmt.Errorf("%w: bottle %q", budget.ErrNotFound, slug)
	case b.State == budget.Killed:
		return fmt.Errorf("%w: bottle %s was killed; nothing is left to act on", budget.ErrConflict, slug)
	case kind == budget.ActRestore && b.State != budget.CutOff && b.State != budget.Pending:
		return fmt.Errorf("%w: bottle %s is %s; restore only reverses a cutoff", budget.ErrConflict, slug, b.State)
	}
	return nil
}
