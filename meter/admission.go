package meter

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/meter/estimate"
	"github.com/bot-bottle/bottlecap/meter/usage"
)

// maxMeteredBody caps the request body the meter reads to estimate a
// request before admitting it; a larger one is refused (413), since it
// could not be estimated and would not be sent unread.
const maxMeteredBody = 32 << 20

// errBodyTooLarge is a request body over maxMeteredBody.
var errBodyTooLarge = errors.New("request body too large")

// reserve admits a metered request against its provider's allowance (SPEC
// section 11): it reads the body (capped), estimates its input and reads
// the output cap it states, and has the pool set aside the estimate and an
// output slice (the cap when smaller). The body goes on byte for byte
// (plus include_usage for an OpenAI Chat stream). When the pool cannot
// cover the request it is refused here, before anything is sent, and
// reserve returns nil.
func (p *Proxy) reserve(w http.ResponseWriter, r *http.Request, up *upstream, ep *budget.Endpoint) *spend {
	if ref := p.backlog(); ref != nil {
		refuse(w, up, *ref)
		return nil
	}
	body, err := readBody(r)
	switch {
	case errors.Is(err, errBodyTooLarge):
		refuse(w, up, refusal{http.StatusRequestEntityTooLarge, "",
			fmt.Sprintf("bottlecap meter: the request body is over %d MiB, the most the meter reads to estimate a request", maxMeteredBody>>20)})
		return nil
	case err != nil:
		if r.Context().Err() == nil {
			writeError(w, up, http.StatusBadRequest, "", "bottlecap meter: "+err.Error())
		}
		return nil
	}
	f := usage.Format(ep.Format)
	est := p.estimator.InputModel(up.Provider, estimate.ModelFromPath(r.URL.Path), f, body)
	if strings.HasSuffix(ep.Suffix, "/compact") {
		est.OutputCap = 0 // remote compaction takes no max_output_tokens: one sent there bounds nothing
	}
	if p.cfg.CountTokens {
		if n, ok := p.countTokens(r, up, ep, body); ok {
			est.Tokens = n // the provider's own count: the estimator still learns from the report
		}
	}
	if f == usage.OpenAIChat && len(body) > 0 {
		if b, ok := withIncludeUsage(body); ok {
			body = b
		}
	}
	if len(body) > 0 {
		setBody(r, body)
	} else {
		r.Body, r.ContentLength = http.NoBody, 0 // not "unknown length", which would go chunked
	}
	a := up.pool.reserve(r.Context(), est.Tokens, est.OutputCap)
	if a.ref != nil {
		refuseUnlessGone(w, up, a.ref)
		return nil
	}
	return newSpend(up, est, a)
}

// readBody reads a request body whole, up to maxMeteredBody.
func readBody(r *http.Request) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	if r.ContentLength > maxMeteredBody {
		return nil, errBodyTooLarge
	}
	var b []byte
	if r.ContentLength > 0 {
		b = make([]byte, 0, r.ContentLength+1) // +1: io.ReadAll then sees EOF without growing
	}
	b, err := readAllInto(b, io.LimitReader(r.Body, maxMeteredBody+1))
	if err != nil {
		return nil, fmt.Errorf("read request body: %w", err)
	}
	if len(b) > maxMeteredBody {
		return nil, errBodyTooLarge
	}
	return b, nil
}

// readAllInto is io.ReadAll appending to b's spare capacity.
func readAllInto(b []byte, r io.Reader) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// refuseUnlessGone refuses with ref unless its status is 0: the client
// left, and nobody is there to answer.
func refuseUnlessGone(w http.ResponseWriter, up *upstream, ref *refusal) {
	if ref.status != 0 {
		refuse(w, up, *ref)
	}
}
