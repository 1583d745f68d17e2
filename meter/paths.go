package meter

import (
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"

	"github.com/bot-bottle/bottlecap/budget"
)

// The meter tells what a request is by its path: a metered generation
// call, a call that spends tokens it cannot count (refused), or anything
// else (forwarded as it is). An upstream may fold a path before routing
// it — decode its escapes, merge "//", resolve "." and "..", drop a
// trailing slash or a segment's ";params", read "\" as "/", ignore letter
// case — so the meter looks at every spelling an upstream might route
// on. A request that any of them names as a metered call is metered, and
// forwarded under the table's spelling of that call, so the upstream is
// asked exactly what the meter metered. Only a request none of whose
// spellings names a metered or an unmetered call goes on as it was sent.

// maxDecodes bounds how many more times a path is unescaped, for an
// upstream behind a hop that decodes it again.
const maxDecodes = 3

// pathForm is one cleaned spelling of a request path; escaped marks the
// spelling as sent, whose escapes are still in it.
type pathForm struct {
	path    string
	escaped bool
}

// pathForms are the spellings of r's path an upstream may route on,
// cleaned: decoded (as net/http has it), as sent (an escaped "/" inside
// a segment stays inside it) and decoded again until nothing more
// unescapes; the first is the one most upstreams route on.
func pathForms(r *http.Request) []pathForm {
	forms := []pathForm{{cleanPath(r.URL.Path), false}}
	add := func(f pathForm) {
		if !slices.ContainsFunc(forms, func(g pathForm) bool { return g.path == f.path }) {
			forms = append(forms, f)
		}
	}
	add(pathForm{cleanPath(r.URL.EscapedPath()), true})
	p := r.URL.Path
	for range maxDecodes {
		d, err := url.PathUnescape(p)
		if err != nil || d == p {
			break
		}
		p = d
		add(pathForm{cleanPath(p), false})
	}
	return forms
}

// cleanPath is p as an upstream that folds paths routes it: "\" read as
// "/", each segment's ";params" dropped, "//", "." and ".." folded, no
// trailing slash; always rooted. Letter case is left to the matching.
func cleanPath(p string) string {
	p = strings.ReplaceAll(p, `\`, "/")
	if strings.Contains(p, ";") {
		segs := strings.Split(p, "/")
		for i, s := range segs {
			segs[i], _, _ = strings.Cut(s, ";")
		}
		p = strings.Join(segs, "/")
	}
	return path.Clean("/" + p)
}

// target is what the meter makes of a request: the upstream it goes to,
// the metered endpoint it calls (nil: none) and that call's path as the
// table spells it, and the spellings it was told by.
type target struct {
	up    *upstream
	ep    *budget.Endpoint
	call  pathForm
	forms []pathForm
}

// route picks a request's upstream and the endpoint it calls, if any: the
// most specific endpoint any spelling of its path calls; else, by its
// decoded path, an API's other paths, the headers that name an API, or
// the fallback API.
func (p *Proxy) route(r *http.Request) target {
	forms := pathForms(r)
	for _, f := range forms {
		if up, ep := p.endpointOf(f.path); ep != nil {
			return target{up: up, ep: ep, call: pathForm{ep.Canonical(f.path), f.escaped}, forms: forms}
		}
	}
	return target{up: p.upstreamOf(r, forms[0].path), forms: forms}
}

// endpointOf is the most specific endpoint the cleaned path calls, with
// its upstream.
func (p *Proxy) endpointOf(path string) (*upstream, *budget.Endpoint) {
	var best *budget.Endpoint
	var bestUp *upstream
	for _, up := range p.upstreams {
		for i := range up.api.Endpoints {
			ep := &up.api.Endpoints[i]
			if ep.Matches(path) && (best == nil || ep.Specificity() > best.Specificity()) {
				best, bestUp = ep, up
			}
		}
	}
	return bestUp, best
}

// upstreamOf is the upstream of a request that calls no metered endpoint.
func (p *Proxy) upstreamOf(r *http.Request, path string) *upstream {
	lower := strings.ToLower(path)
	for _, up := range p.upstreams {
		for _, prefix := range up.api.Prefixes {
			if strings.HasPrefix(lower, strings.ToLower(prefix)) {
				return up
			}
		}
	}
	for _, up := range p.upstreams {
		for _, h := range up.api.Headers {
			if r.Header.Get(h) != "" {
				return up
			}
		}
	}
	return p.fallback
}

// callAsMetered points r at the path of the call the meter meters, as the
// table spells it (the query stays): an upstream that would have folded
// the spelling sent gets the call it would have made of it.
func (p *Proxy) callAsMetered(r *http.Request, t target) {
	old := r.URL.EscapedPath()
	if t.call.escaped {
		dec, err := url.PathUnescape(t.call.path)
		if err != nil {
			dec = t.call.path // cannot happen: it came from a parsed request
		}
		r.URL.Path, r.URL.RawPath = dec, t.call.path
	} else {
		r.URL.Path, r.URL.RawPath = t.call.path, ""
	}
	if now := r.URL.EscapedPath(); now != old {
		p.log.Info("metered a generation call sent under another spelling; forwarded as the table spells it",
			"provider", t.up.Provider, "sent", old, "forwarded", now)
	}
}

// screen answers what must not reach the upstream — a request to a
// metered endpoint that is not a POST but could generate, an unmetered
// call, a metered call that asks for an answer the meter cannot read —
// and points a metered call at the table's spelling of it. It returns the
// endpoint to meter (nil: none) and whether the request goes on.
func (p *Proxy) screen(w http.ResponseWriter, r *http.Request, t target) (*budget.Endpoint, bool) {
	ep := t.ep
	if ep != nil && r.Method != http.MethodPost {
		if mayGenerate(r) {
			p.refuseMethod(w, r, t)
			return nil, false
		}
		ep = nil // a bodiless read generates nothing
	}
	if ep == nil {
		if owner, u := p.unmeteredCall(r, t.up, t.forms); u != nil {
			p.refuseUnmetered(w, r, owner, u)
			return nil, false
		}
		return nil, true
	}
	if ask := unreadableAsk(r, t.up.api); ask != "" {
		p.refuseUnreadable(w, r, t.up, ask)
		return nil, false
	}
	p.callAsMetered(r, t)
	return ep, true
}

// mayGenerate reports whether r could make an upstream generate: a
// request with a body, or of a method that carries one. A bodiless GET,
// HEAD, OPTIONS or DELETE has no prompt to answer (OpenAI lists stored
// chat completions with a GET of /v1/chat/completions).
func mayGenerate(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodDelete:
		return r.ContentLength != 0
	}
	return true
}

// refuseMethod answers a request to a metered endpoint that is not a POST
// but could still make an upstream that routes by path alone generate
// (a PUT, a GET with a body): the meter meters POSTs, so it is refused.
func (p *Proxy) refuseMethod(w http.ResponseWriter, r *http.Request, t target) {
	p.log.Warn("refused a request to a generation endpoint that is not a POST", "provider", t.up.Provider,
		"method", r.Method, "path", r.URL.Path)
	refuse(w, t.up, refusal{http.StatusForbidden, budget.RefuseUnmetered, "bottlecap meter: " + r.Method + " " +
		r.URL.Path + " calls " + t.call.path + ", which bottlecap meters only as a POST; sent with another method " +
		"(or with a body) it could spend tokens the budget cannot see, so it was refused (fail-closed). Send it as a POST"})
}
