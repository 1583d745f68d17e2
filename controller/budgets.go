package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
)

// handleBudgets lists the limits in force at every scope that has any.
func (s *Server) handleBudgets(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	out := []api.Budget{{Scope: "global", ID: "-", Limits: s.book.GlobalLimits()}}
	for _, b := range s.book.Bottles() {
		if len(b.Budget) > 0 {
			out = append(out, api.Budget{Scope: "bottle", ID: b.Slug, Limits: b.Budget})
		}
		agents := make([]string, 0, len(b.AgentBudgets))
		for a := range b.AgentBudgets {
			agents = append(agents, a)
		}
		sort.Strings(agents)
		for _, a := range agents {
			out = append(out, api.Budget{Scope: "agent", ID: b.Slug + "/" + a, Limits: b.AgentBudgets[a]})
		}
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

// handleBudget shows the limits at one scope.
func (s *Server) handleBudget(w http.ResponseWriter, r *http.Request) {
	b, err := s.budgetAt(r.PathValue("scope"), r.PathValue("id"))
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, b)
}

func (s *Server) budgetAt(scope, id string) (api.Budget, error) {
	kind, slug, agent, err := parseScope(scope, id)
	if err != nil {
		return api.Budget{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if kind == budget.ScopeGlobal {
		return api.Budget{Scope: scope, ID: id, Limits: s.book.GlobalLimits()}, nil
	}
	b, ok := s.book.Bottle(slug)
	if !ok {
		return api.Budget{}, fmt.Errorf("%w: bottle %q", budget.ErrNotFound, slug)
	}
	l := b.Budget
	if kind == budget.ScopeAgent {
		l = b.AgentBudgets[agent]
	}
	if l == nil {
		l = budget.Limits{}
	}
	return api.Budget{Scope: scope, ID: id, Limits: l}, nil
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

// handlePutBudget sets limits at a scope at runtime: the providers given
// change, the others stay. A bottle the daemon has not seen is recorded as
// an implicit bottle holding the budget, which governs it from its first
// report. What the change leaves exhausted acts at once; raising a cut-off
// bottle's governing budget above its usage restores it.
func (s *Server) handlePutBudget(w http.ResponseWriter, r *http.Request) {
	scope, id := r.PathValue("scope"), r.PathValue("id")
	kind, slug, agent, err := parseScope(scope, id)
	if err != nil {
		writeErr(w, err)
		return
	}
	limits, err := readLimits(w, r)
	if err != nil {
		writeErr(w, err)
		return
	}
	touched, exempt, err := s.setLimits(r.Context(), kind, slug, agent, limits)
	if err != nil {
		writeErr(w, err)
		return
	}
	s.publish("budget", slug, map[string]any{"scope": scope, "id": id, "limits": limits})
	if err := s.audit(r.Context(), "budget", slug, fmt.Sprintf("%s/%s set to %s", scope, id, formatLimits(limits))); err != nil {
		writeErr(w, err)
		return
	}
	s.settle(r.Context(), touched, exempt)
	b, err := s.budgetAt(scope, id)
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
		return nil, fmt.Errorf("%w: body: want at least one provider, e.g. {\"claude\": \"1M\"}", budget.ErrInvalid)
	}
	l := budget.Limits{}
	for p, v := range raw {
		if err := budget.ValidateName("provider", p); err != nil {
			return nil, err
		}
		var a api.Amount
		if err := a.UnmarshalJSON(v); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		l[p] = int64(a)
	}
	return l, nil
}

// setLimits applies limits in the store and the book, and returns the
// bottles whose budgets that can change with the operator exemptions taken
// just before, for settle.
func (s *Server) setLimits(ctx context.Context, kind budget.ScopeKind, slug, agent string, l budget.Limits) ([]string, budget.Exemptions, error) {
	if kind == budget.ScopeGlobal {
		if err := s.cfg.Ledger.PutBudget(ctx, kind, "-", l); err != nil {
			return nil, nil, err
		}
		s.mu.Lock()
		touched := s.book.Slugs()
		exempt := s.book.OperatorExempt(touched)
		s.book.SetGlobal(l)
		s.mu.Unlock()
		return touched, exempt, s.cfg.Ledger.ClearWarned(ctx, kind, "-")
	}
	s.mu.Lock()
	if _, known := s.book.Bottle(slug); !known {
		unseen := budget.Bottle{Slug: slug, State: budget.Active, Implicit: true, CreatedAt: s.now().UTC()}
		if err := s.book.Register(unseen); err != nil {
			s.mu.Unlock()
			return nil, nil, err
		}
	}
	touched := []string{slug}
	if kind == budget.ScopeBottle {
		touched = s.book.Subtree(slug) // a bottle's budget covers its subtree
	}
	exempt := s.book.OperatorExempt(touched)
	err := s.book.SetBudget(slug, agent, l)
	s.mu.Unlock()
	if err != nil {
		return nil, nil, err
	}
	if err := s.acts.saveBottle(ctx, slug); err != nil {
		return nil, nil, err
	}
	id := slug
	if kind == budget.ScopeAgent {
		id = slug + "/" + agent
	}
	return touched, exempt, s.cfg.Ledger.ClearWarned(ctx, kind, id)
}
