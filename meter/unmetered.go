package meter

import (
	"fmt"
	"net/http"
	"slices"

	"github.com/bot-bottle/bottlecap/budget"
)

// The provider table lists the calls of each API that spend tokens the
// meter cannot count (budget.ProviderAPI.Unmetered): batches, embeddings,
// images, audio, realtime sessions, agents the provider runs itself. A POST
// to one would spend the budget where it cannot see, so the meter refuses
// it before the upstream (fail closed), unless the operator names it in
// Config.PassUnmetered. Every other path is forwarded as before: the list
// holds the known spending calls, not the harmless ones, so what agents
// call besides generation (model lists, token counts, files, telemetry,
// sign-in) keeps working.

// checkPassUnmetered checks that each name is the pattern of an unmetered
// call of the provider table, so a typo fails at start-up instead of
// leaving the call refused.
func checkPassUnmetered(names []string) error {
	var known []string
	for _, api := range budget.ProviderAPIs() {
		for _, u := range api.Unmetered {
			known = append(known, u.Pattern)
		}
	}
	for _, n := range names {
		if !slices.Contains(known, n) {
			return fmt.Errorf("%w: meter: --pass-unmetered %q is not an unmetered call of the provider table (want its pattern as listed, e.g. /v1/embeddings or /*/models/*:embedContent)",
				budget.ErrInvalid, n)
		}
	}
	return nil
}

// unmeteredCall is the unmetered call r makes, with the upstream whose
// API it is, unless the operator passes it: nil when r may go on. Every
// cleaned spelling of the request path is matched (paths.go), against the
// list of the API r is routed to and then those of the others (a path
// that names another API's call is that API's, whatever else routed it),
// and any request that may generate (a POST, a PUT, a GET with a body) is
// taken for the call: an upstream that routes by path alone would run it.
func (p *Proxy) unmeteredCall(r *http.Request, routed *upstream, forms []pathForm) (*upstream, *budget.Unmetered) {
	if !mayGenerate(r) {
		return nil, nil
	}
	ups := append([]*upstream{routed}, p.upstreams...)
	for _, up := range ups {
		for _, f := range forms {
			u := budget.UnmeteredCall(up.api, f.path)
			if u != nil && !slices.Contains(p.cfg.PassUnmetered, u.Pattern) {
				return up, u
			}
		}
	}
	return nil, nil
}

// refuseUnmetered answers a call the budget cannot see with 403 in its
// API's error shape, saying so and how an operator lets it through.
func (p *Proxy) refuseUnmetered(w http.ResponseWriter, r *http.Request, up *upstream, u *budget.Unmetered) {
	p.log.Warn("refused a call that spends tokens bottlecap does not meter", "provider", up.Provider,
		"path", r.URL.Path, "call", u.Pattern)
	refuse(w, up, refusal{http.StatusForbidden, budget.RefuseUnmetered, unmeteredMessage(r, up, u)})
}

// unmeteredMessage names the call, why it is refused and the operator's
// way through.
func unmeteredMessage(r *http.Request, up *upstream, u *budget.Unmetered) string {
	return fmt.Sprintf("bottlecap meter: %s %s (%s %s) spends tokens that bottlecap does not meter, so the %s budget "+
		"cannot see them; the request was refused (fail-closed). An operator who accepts that can let it through, "+
		"unmetered, with `bottlecap meter --pass-unmetered %s`",
		r.Method, r.URL.Path, up.api.Name, u.What, up.Provider, u.Pattern)
}
