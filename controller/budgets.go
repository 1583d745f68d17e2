package controller

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
)

// handleBudgets lists every limit of every scope with its source, those
// in force and those they override.
func (s *Server) handleBudgets(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.core.Budgets())
}

// handleBudget shows the limits at one scope.
func (s *Server) handleBudget(w http.ResponseWriter, r *http.Request) {
	b, err := s.core.Budget(r.PathValue("scope"), r.PathValue("id"))
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, b)
}

// parseScope checks global/-, bottle/<slug> and agent/<slug>/<agent>.
func parseScope(scope, id string) (kind budget.ScopeKind, slug, agent string, err error) {
	kind, err = budget.ParseScopeKind(scope)
	if err != nil {
		return "", "", "", err
	}
	switch kind {
	case budget.ScopeGlobal:
		if id != "-" && id != "" {
			return "", "", "", fmt.Errorf("%w: id: the global scope's id is \"-\", got %q", budget.ErrInvalid, id)
		}
	case budget.ScopeBottle:
		err = budget.ValidateSlug("id", id)
		slug = id
	case budget.ScopeAgent:
		var ok bool
		if slug, agent, ok = strings.Cut(id, "/"); !ok {
			return "", "", "", fmt.Errorf("%w: id: want <slug>/<agent> for the agent scope, got %q", budget.ErrInvalid, id)
		}
		if err = budget.ValidateSlug("id", slug); err == nil {
			err = budget.ValidateName("agent", agent)
		}
	}
	return kind, slug, agent, err
}

// handlePutBudget sets limits at a scope at runtime (see Core.SetLimits).
func (s *Server) handlePutBudget(w http.ResponseWriter, r *http.Request) {
	scope, id := r.PathValue("scope"), r.PathValue("id")
	if _, _, _, err := parseScope(scope, id); err != nil {
		writeErr(w, err)
		return
	}
	limits, err := readLimits(w, r)
	if err != nil {
		writeErr(w, err)
		return
	}
	b, err := s.core.SetLimits(r.Context(), scope, id, limits)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, b)
}

// handleDeleteBudget removes the limits in force at a scope, for every
// provider or those named by ?provider= (repeatable); see
// Core.RemoveLimits.
func (s *Server) handleDeleteBudget(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for k := range q {
		if k != "provider" {
			writeErr(w, fmt.Errorf("%w: query parameter %q: only provider is taken", budget.ErrInvalid, k))
			return
		}
	}
	b, err := s.core.RemoveLimits(r.Context(), r.PathValue("scope"), r.PathValue("id"), q["provider"])
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, b)
}

func readLimits(w http.ResponseWriter, r *http.Request) (budget.Limits, error) {
	var raw map[string]json.RawMessage
	if err := decodeBody(w, r, api.MaxRequestBytes, &raw); err != nil {
		return nil, err
	}
	if len(raw) == 0 {
		return nil, fmt.Errorf("%w: body: want at least one provider, e.g. {\"claude\": \"1M\"} or {\"claude\": [\"5M/day\", \"50M/month\"]}", budget.ErrInvalid)
	}
	l := budget.Limits{}
	for p, v := range raw {
		if err := budget.ValidateName("provider", p); err != nil {
			return nil, err
		}
		var set budget.LimitSet
		if err := set.UnmarshalJSON(v); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		l[p] = set
	}
	return l, nil
}
