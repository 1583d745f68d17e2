package controller

import (
	"net/http"
	"net/http/pprof"
)

// routes is the daemon's whole API surface, one line a route. Handlers
// marked operatorOnly refuse non-operator peers with 403.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/usage", s.handleIngest)
	mux.HandleFunc("GET /v1/verdict", s.handleVerdict)
	mux.HandleFunc("POST /v1/allowances", s.handleAllow)
	mux.HandleFunc("DELETE /v1/allowances/{id}", s.handleRelease)
	// Non-operators may watch one bottle's events (handleEvents checks).
	mux.HandleFunc("GET /v1/events", s.handleEvents)

	mux.HandleFunc("GET /v1/bottles", s.operatorOnly(s.handleBottles))
	mux.HandleFunc("GET /v1/bottles/{slug}", s.operatorOnly(s.handleBottle))
	mux.HandleFunc("PUT /v1/bottles/{slug}", s.operatorOnly(s.handlePutBottle))
	mux.HandleFunc("DELETE /v1/bottles/{slug}", s.operatorOnly(s.handleDeleteBottle))
	mux.HandleFunc("POST /v1/bottles/{slug}/actions", s.operatorOnly(s.handleAction))
	mux.HandleFunc("GET /v1/actions", s.operatorOnly(s.handleActions))
	mux.HandleFunc("GET /v1/actions/{id}", s.operatorOnly(s.handleActionByID))

	mux.HandleFunc("GET /v1/budgets", s.operatorOnly(s.handleBudgets))
	mux.HandleFunc("GET /v1/budgets/{scope}/{id...}", s.operatorOnly(s.handleBudget))
	mux.HandleFunc("PUT /v1/budgets/{scope}/{id...}", s.operatorOnly(s.handlePutBudget))
	mux.HandleFunc("DELETE /v1/budgets/{scope}/{id...}", s.operatorOnly(s.handleDeleteBudget))

	mux.HandleFunc("GET /v1/status", s.operatorOnly(s.handleStatus))
	mux.HandleFunc("GET /v1/audit", s.operatorOnly(s.handleAudit))
	mux.HandleFunc("GET /v1/audit/verify", s.operatorOnly(s.handleAuditVerify))
	mux.Handle("GET /metrics", s.operatorOnly(s.metrics.handler().ServeHTTP))
	// Go's profiler, for operators chasing a slow daemon: go tool pprof
	// reads it through `curl --unix-socket`.
	mux.HandleFunc("GET /debug/pprof/", s.operatorOnly(pprof.Index))
	mux.HandleFunc("GET /debug/pprof/profile", s.operatorOnly(pprof.Profile))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
	return mux
}

// operatorOnly lets only operator peers through.
func (s *Server) operatorOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if p, ok := peerFrom(r.Context()); !ok || !p.Operator {
			writeError(w, http.StatusForbidden, "not permitted: only root, the daemon's user and settings operators may "+r.Method+" "+r.URL.Path)
			return
		}
		h(w, r)
	}
}
