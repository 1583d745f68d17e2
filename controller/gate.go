package controller

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/bot-bottle/bottlecap/budget"
)

// handleVerdict implements GET /v1/verdict: answered from the book in
// memory, never touching the disk.
func (s *Server) handleVerdict(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	bottle, agent, provider := q.Get("bottle"), q.Get("agent"), q.Get("provider")
	if err := budget.ValidateSlug("bottle", bottle); err != nil {
		writeErr(w, err)
		return
	}
	if err := budget.ValidateName("provider", provider); err != nil {
		writeErr(w, err)
		return
	}
	var estimate int64
	if e := q.Get("estimate"); e != "" {
		n, err := strconv.ParseInt(e, 10, 64)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("estimate: %q is not a whole non-negative number of tokens", e))
			return
		}
		estimate = n
	}
	s.mu.Lock()
	v := s.book.Verdict(bottle, agent, provider, estimate)
	s.mu.Unlock()
	s.metrics.verdict(v.Allowed)
	writeJSON(w, http.StatusOK, v)
}

// verdictsFor is one verdict per (bottle, agent, provider) in reports.
func (s *Server) verdictsFor(reports []budget.Report) []budget.Verdict {
	type key struct{ b, a, p string }
	seen := map[key]bool{}
	var keys []key
	for _, r := range reports {
		k := key{r.Bottle, r.Agent, r.Provider}
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	out := make([]budget.Verdict, 0, len(keys))
	for chunk := range slices.Chunk(keys, lockChunk) {
		s.mu.Lock()
		for _, k := range chunk {
			out = append(out, s.book.Verdict(k.b, k.a, k.p, 0))
		}
		s.mu.Unlock()
	}
	return out
}

// bottleOfContainer finds the bottle a container belongs to: first among
// the containers bottles registered with, then through ContainerBottle.
func (s *Server) bottleOfContainer(ctx context.Context, id string) (string, bool) {
	s.mu.Lock()
	slug, ok := s.book.BottleOfContainer(id)
	s.mu.Unlock()
	if !ok && s.cfg.ContainerBottle != nil {
		return s.cfg.ContainerBottle(ctx, id)
	}
	return slug, ok
}

// hostOnly lowercases a host and drops any port.
func hostOnly(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	return strings.ToLower(h)
}
