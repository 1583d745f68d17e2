package controller

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
)

func (s *Server) handleBottles(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	bottles, providers := s.book.Bottles(), s.book.Providers()
	out := make([]api.Bottle, 0, len(bottles))
	for _, b := range bottles {
		out = append(out, s.viewLocked(b, providers))
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleBottle(w http.ResponseWriter, r *http.Request) {
	v, err := s.view(r.PathValue("slug"))
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// view is a bottle with its usage and verdicts, or ErrNotFound.
func (s *Server) view(slug string) (api.Bottle, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.book.Bottle(slug)
	if !ok {
		return api.Bottle{}, fmt.Errorf("%w: bottle %q", budget.ErrNotFound, slug)
	}
	return s.viewLocked(b, s.book.Providers()), nil
}

// viewLocked builds a bottle's view over the providers given (the book's,
// computed once per request: it walks every bottle). s.mu must be held.
func (s *Server) viewLocked(b budget.Bottle, providers []string) api.Bottle {
	v := api.Bottle{Bottle: b, Usage: map[string]int64{}}
	for _, p := range providers {
		_, sub, _ := s.book.Used(b.Slug, b.Agent, p)
		verdict := s.book.Verdict(b.Slug, b.Agent, p, 0)
		if sub == 0 && verdict.Unlimited {
			continue
		}
		v.Usage[p] = sub
		v.Verdicts = append(v.Verdicts, verdict)
	}
	return v
}

// handlePutBottle registers or updates a bottle. Fields given replace the
// stored ones; budgets merge per provider, so a re-registration (say, from
// container labels) does not wipe limits an operator set at runtime.
func (s *Server) handlePutBottle(w http.ResponseWriter, r *http.Request) {
	var req api.BottleRequest
	if err := decodeBody(w, r, api.MaxRequestBytes, &req); err != nil {
		writeErr(w, err)
		return
	}
	slug := r.PathValue("slug")
	b, err := s.bottleFromRequest(slug, req)
	if err != nil {
		writeErr(w, err)
		return
	}
	if err := s.registerBottle(r.Context(), b); err != nil {
		writeErr(w, err)
		return
	}
	v, err := s.view(slug)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// bottleFromRequest validates a registration and merges it over the
// bottle's current registration.
func (s *Server) bottleFromRequest(slug string, req api.BottleRequest) (budget.Bottle, error) {
	if err := budget.ValidateSlug("slug", slug); err != nil {
		return budget.Bottle{}, err
	}
	s.mu.Lock()
	b, ok := s.book.Bottle(slug)
	s.mu.Unlock()
	if !ok {
		b = budget.Bottle{Slug: slug, State: budget.Active, CreatedAt: s.now().UTC()}
	}
	b.Implicit = false
	if err := mergeRegistration(&b, req); err != nil {
		return b, err
	}
	return b, nil
}

func mergeRegistration(b *budget.Bottle, req api.BottleRequest) error {
	for field, v := range map[string]string{"agent": req.Agent, "parent": req.Parent} {
		if v != "" {
			if err := budget.ValidateName(field, v); err != nil {
				return err
			}
		}
	}
	if req.Agent != "" {
		b.Agent = req.Agent
	}
	if req.Name != "" {
		b.Name = req.Name
	}
	if req.Parent != "" {
		b.Parent = req.Parent
	}
	if req.Shutdown != "" {
		p, err := budget.ParsePolicy(req.Shutdown)
		if err != nil {
			return fmt.Errorf("shutdown: %w", err)
		}
		b.Shutdown = p
	}
	if len(req.Containers) > 0 {
		b.Containers = req.Containers
	}
	b.Budget = b.Budget.Merge(api.Limits(req.Budget))
	for agent, l := range req.AgentBudgets {
		if err := budget.ValidateName("agent_budgets", agent); err != nil {
			return err
		}
		if b.AgentBudgets == nil {
			b.AgentBudgets = map[string]budget.Limits{}
		}
		b.AgentBudgets[agent] = b.AgentBudgets[agent].Merge(api.Limits(l))
	}
	return nil
}

// registerBottle puts a registration (API or labels) in force and settles
// what it can change: the bottle's subtree (its own budgets, name and
// policy, and the limits of a new parent over it) and, when it moves with
// usage under it, the trees of the parents it leaves and joins, whose
// budgets that usage leaves or enters. A fresh bottle with nothing counted
// settles only itself (and any children that named it first), so
// registering costs what its subtree does, not what its tree does.
func (s *Server) registerBottle(ctx context.Context, b budget.Bottle) error {
	s.mu.Lock()
	old, _ := s.book.Bottle(b.Slug)
	touched := s.book.Trees(b.Slug)
	if line := s.book.Subtree(b.Slug); len(line) > 0 {
		touched = line
	}
	if old.Parent != b.Parent && s.book.HasUsageUnder(b.Slug) {
		touched = append(touched, s.book.Trees(b.Slug, old.Parent, b.Parent)...)
	}
	exempt := s.book.OperatorExempt(touched)
	s.mu.Unlock()
	if err := s.putBottle(ctx, b, true); err != nil {
		return err
	}
	s.mu.Lock()
	touched = append(touched, s.book.Subtree(b.Slug)...)
	s.mu.Unlock()
	slices.Sort(touched)
	s.settle(ctx, slices.Compact(touched), exempt)
	return nil
}

// putBottle registers a bottle in the book (which rejects parent cycles)
// and then the store; the book change is undone if the store refuses.
func (s *Server) putBottle(ctx context.Context, b budget.Bottle, announce bool) error {
	s.mu.Lock()
	old, existed := s.book.Bottle(b.Slug)
	if existed {
		// Registration never changes enforcement state: only actions do.
		b.State, b.StateReason, b.ByOperator = old.State, old.StateReason, old.ByOperator
	}
	err := s.book.Register(b)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	if err := s.cfg.Ledger.PutBottle(ctx, b); err != nil {
		s.mu.Lock()
		if existed {
			_ = s.book.Register(old) // it was registered before, so it still fits
		} else {
			s.book.Forget(b.Slug)
		}
		s.mu.Unlock()
		return fmt.Errorf("store bottle %s: %w", b.Slug, err)
	}
	s.publish("bottle", b.Slug, b)
	if announce {
		return s.audit(ctx, "bottle", b.Slug, describeBottle(b))
	}
	return nil
}

func describeBottle(b budget.Bottle) string {
	parts := []string{"registered"}
	if b.Parent != "" {
		parts = append(parts, "parent "+b.Parent)
	}
	if len(b.Budget) > 0 {
		parts = append(parts, "budget "+formatLimits(b.Budget))
	}
	if b.Shutdown != "" {
		parts = append(parts, "shutdown "+string(b.Shutdown))
	}
	return strings.Join(parts, ", ")
}

// formatLimits renders limits as "claude=1000000 codex=500000", sorted.
func formatLimits(l budget.Limits) string {
	parts := make([]string, 0, len(l))
	for p, n := range l {
		parts = append(parts, fmt.Sprintf("%s=%d", p, n))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

func (s *Server) handleDeleteBottle(w http.ResponseWriter, r *http.Request) {
	slug := r.PathValue("slug")
	if _, err := s.view(slug); err != nil {
		writeErr(w, err)
		return
	}
	if err := s.cfg.Ledger.DeleteBottle(r.Context(), slug); err != nil {
		writeErr(w, err)
		return
	}
	s.mu.Lock()
	s.book.Forget(slug)
	s.mu.Unlock()
	if err := s.audit(r.Context(), "bottle", slug, "forgotten (its reports stay in the ledger)"); err != nil {
		writeErr(w, err)
		return
	}
	s.publish("bottle", slug, nil)
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
	acts, err := s.cfg.Ledger.Actions(r.Context(), status)
	if err != nil {
		writeErr(w, err)
		return
	}
	out := make([]api.Action, 0, len(acts))
	for _, a := range acts {
		out = append(out, apiAction(a))
	}
	writeJSON(w, http.StatusOK, out)
}

func apiAction(a budget.Action) api.Action {
	return api.Action{ID: a.ID, Bottle: a.Bottle, Kind: string(a.Kind), Reason: a.Reason, Operator: a.Operator,
		Status: string(a.Status), Attempts: a.Attempts, LastError: a.LastError, CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt}
}
