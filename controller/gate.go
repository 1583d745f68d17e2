package controller

import (
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/bot-bottle/bottlecap/budget"
)

// handleVerdict implements GET /v1/verdict: answered from the book in
// memory, never touching the disk (a host out of fleet lease first waits
// for its lease keeper: GateVerdict).
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
	writeJSON(w, http.StatusOK, s.core.GateVerdict(r.Context(), bottle, agent, provider, estimate))
}

// hostOnly lowercases a host and drops any port.
func hostOnly(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	return strings.ToLower(h)
}
