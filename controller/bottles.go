package controller

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
)

func (s *Server) handleBottles(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.core.Bottles())
}

func (s *Server) handleBottle(w http.ResponseWriter, r *http.Request) {
	v, err := s.core.Bottle(r.PathValue("slug"))
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// handlePutBottle registers or updates a bottle (see Core.Register).
func (s *Server) handlePutBottle(w http.ResponseWriter, r *http.Request) {
	var req api.BottleRequest
	if err := decodeBody(w, r, api.MaxRequestBytes, &req); err != nil {
		writeErr(w, err)
		return
	}
	v, err := s.core.Register(r.Context(), r.PathValue("slug"), req)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) handleDeleteBottle(w http.ResponseWriter, r *http.Request) {
	if err := s.core.Forget(r.Context(), r.PathValue("slug")); err != nil {
		writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleActions(w http.ResponseWriter, r *http.Request) {
	status := budget.ActionStatus(r.URL.Query().Get("status"))
	switch status {
	case "", budget.StatusPending, budget.StatusDone, budget.StatusFailed:
	default:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("status: %q: want pending, done or failed", status))
		return
	}
	acts, err := s.core.Actions(r.Context(), status)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, acts)
}

// handleActionByID implements GET /v1/actions/{id}: one action, so that a
// caller can follow it to done or failed (bottlecap kill --wait).
func (s *Server) handleActionByID(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("action id %q: want a positive integer", r.PathValue("id")))
		return
	}
	act, err := s.core.Action(r.Context(), id)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, act)
}
