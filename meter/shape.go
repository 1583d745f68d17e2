package meter

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/bot-bottle/bottlecap/budget"
)

// unreadableAsk is what in a metered request asks the upstream for an
// answer the meter could not read the usage of (budget.ProviderAPI's
// ShapeParams and ShapeHeaders: Google's alt=proto, fields,
// X-Goog-FieldMask), or "" when nothing does. Only JSON and server-sent
// events are read.
func unreadableAsk(r *http.Request, api budget.ProviderAPI) string {
	if len(api.ShapeParams) > 0 {
		q := r.URL.Query()
		for _, name := range api.ShapeParams {
			for _, v := range q[name] {
				if !strings.EqualFold(v, "json") && !strings.EqualFold(v, "sse") {
					return name + "=" + v
				}
			}
		}
	}
	for _, h := range api.ShapeHeaders {
		if v := r.Header.Values(h); len(v) > 0 {
			return h + ": " + strings.Join(v, ", ")
		}
	}
	return ""
}

// refuseUnreadable answers a metered call that asks for an answer the
// meter could not read with 403, before anything is spent.
func (p *Proxy) refuseUnreadable(w http.ResponseWriter, r *http.Request, up *upstream, ask string) {
	p.log.Warn("refused a generation call that asks for an answer the meter cannot read", "provider", up.Provider,
		"path", r.URL.Path, "asks", ask)
	refuse(w, up, refusal{http.StatusForbidden, budget.RefuseUnmetered, fmt.Sprintf(
		"bottlecap meter: %s %s asks (%s) for an answer bottlecap cannot read the usage of, so the %s budget could "+
			"not see what it spends; the request was refused (fail-closed). Ask for JSON or server-sent events "+
			"(alt=sse), with every field", r.Method, r.URL.Path, ask, up.Provider)})
}
