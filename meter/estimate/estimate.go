package estimate

import (
	"strings"
	"sync"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/meter/usage"
)

// Estimate is the predicted input of one request. The meter keeps it with
// the request and hands it back to [Estimator.Learn] with the provider's
// count, which is how the estimator learns.
type Estimate struct {
	// Model is the model the request names ("" if none).
	Model string
	// Tokens is the predicted input tokens: uncached, cache read and cache
	// write together, raw (before any weight).
	Tokens int64
	// Chained is true when the body continues state the provider keeps
	// that the estimator does not know the size of (conversation,
	// cachedContent, or a previous_response_id it was not told of through
	// Responded): Tokens then covers only what the body holds, and the
	// provider's count of such a request teaches the estimator nothing.
	Chained bool
	// OutputCap is the most output tokens (raw) the body lets the model
	// generate, reasoning included, as its provider honours the body's
	// format (max_tokens, max_completion_tokens × n or best_of,
	// max_output_tokens, generationConfig.maxOutputTokens ×
	// candidateCount); 0 when it states none the estimator trusts.
	OutputCap int64

	text, fixed int64 // counted bytes and fixed tokens (images, tool prompts)
	family      family
	parsed      bool // the body was a JSON object
}

// Estimator predicts input and output tokens and learns from the counts
// providers report. It does no I/O and is safe for concurrent use.
type Estimator struct {
	mu       sync.Mutex
	input    table
	output   table
	contexts contexts
}

// New returns an estimator that knows only the families' priors.
func New() *Estimator {
	return &Estimator{input: newTable(), output: newTable(), contexts: newContexts()}
}

// Input estimates all input tokens of one request body of the given usage
// format, and the model the body names ("" if none).
func (e *Estimator) Input(provider string, f usage.Format, body []byte) Estimate {
	return e.InputModel(provider, "", f, body)
}

// InputModel is Input for a request whose model may be named outside the
// body, as Gemini's path does (see [ModelFromPath]); a model in the body
// wins.
func (e *Estimator) InputModel(provider, model string, f usage.Format, body []byte) Estimate {
	c, ok := scan(body)
	if c.model != "" {
		model = c.model
	}
	if !ok {
		return Estimate{Model: model, Tokens: unparsed(len(body))} // a cap in a body not JSON is not trusted
	}
	fam := familyOf(f, model)
	fixed := c.images * priors[fam].imageTokens
	if c.tools {
		fixed += priors[fam].toolsTokens
	}
	e.mu.Lock()
	cal := e.input.lookup(provider, model, fam)
	previous, known := e.contexts.get(key{provider, c.previous})
	e.mu.Unlock()
	fixed += previous
	return Estimate{
		Model:     model,
		Tokens:    max(cal.tokens(c.text, fixed), 1),
		Chained:   c.chained || c.previous != "" && !known,
		OutputCap: outputCap(f, &c),
		text:      c.text,
		fixed:     fixed,
		family:    fam,
		parsed:    true,
	}
}

// unparsedBytesPerToken turns a body that is not JSON into tokens: fewer
// bytes a token than any family averages, so the guess errs high.
const unparsedBytesPerToken = 3

func unparsed(n int) int64 {
	return int64((n + unparsedBytesPerToken - 1) / unparsedBytesPerToken)
}

// Learn feeds back the provider's true input count (input + cache_read +
// cache_write of the report) for a request whose estimate was est, so
// estimates converge per (provider, model). Estimates of bodies that were
// not JSON, or that were chained, teach nothing.
func (e *Estimator) Learn(provider string, est Estimate, actualInput int64) {
	if !est.parsed || est.Chained || actualInput <= 0 {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.input.learn(provider, est.Model, est.family, est.text, est.fixed, actualInput)
}

// Responded tells the estimator the usage of a response the provider
// keeps (OpenAI Responses stores them unless "store": false), so that a
// later request continuing it by previous_response_id is estimated with the
// context it carries: the response's input and output, reasoning included,
// which errs high when the provider drops earlier reasoning. The last
// maxContexts responses are remembered.
func (e *Estimator) Responded(provider, id string, u budget.Usage) {
	if id == "" {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.contexts.put(key{provider, id}, u.Total())
}

// Output converts the delta bytes a stream passed (text, tool-call
// arguments, thinking; see usage.Parser.DeltaBytes) into output tokens for
// (provider, model), calibrated from reports by LearnOutput. Use the same
// model name for both (the request's, Estimate.Model, is always at hand).
func (e *Estimator) Output(provider, model string, deltaBytes int64) int64 {
	if deltaBytes <= 0 {
		return 0
	}
	e.mu.Lock()
	cal := e.output.lookup(provider, model, familyOfModel(model))
	e.mu.Unlock()
	return cal.tokens(deltaBytes, 0)
}

// LearnOutput feeds back the provider's output count for a response that
// passed deltaBytes of generated content. Reasoning the stream did not show
// is part of the count, so the ratio learned includes it: an incomplete
// stream of a reasoning model is then estimated at what such streams
// typically cost per byte shown.
func (e *Estimator) LearnOutput(provider, model string, deltaBytes, actualOutput int64) {
	if deltaBytes <= 0 || actualOutput <= 0 {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.output.learn(provider, model, familyOfModel(model), deltaBytes, 0, actualOutput)
}

// ModelFromPath is the model a Gemini request path names
// (/v1beta/models/gemini-2.5-flash:streamGenerateContent), or "".
func ModelFromPath(path string) string {
	_, rest, ok := strings.Cut(path, "/models/")
	if !ok {
		return ""
	}
	model, _, _ := strings.Cut(rest, ":")
	if strings.ContainsAny(model, "/?") {
		return ""
	}
	return model
}

// maxModels and maxProviders bound what a table tracks: model names come
// from request bodies, so a client could otherwise grow it without end.
// Models beyond the cap share their provider's ratio; providers beyond it
// keep the family's prior.
const (
	maxModels    = 256
	maxProviders = 64
)

// key names one model, or one response, of one provider.
type key struct{ provider, name string }

// table is the learned ratios of one direction (input or output): one per
// model, and one per provider that every model of it feeds and that models
// not tracked on their own share.
type table struct {
	models    map[key]calib
	providers map[string]calib
}

func newTable() table {
	return table{models: map[key]calib{}, providers: map[string]calib{}}
}

// lookup is the ratio to estimate with: the model's, else the provider's,
// else the family's prior.
func (t *table) lookup(provider, model string, fam family) calib {
	if c, ok := t.models[key{provider, model}]; ok {
		return c
	}
	if c, ok := t.providers[provider]; ok {
		return c
	}
	return newCalib(priors[fam])
}

// learn feeds one observation to the model's ratio (created from the
// provider's when there is room) and to the provider's.
func (t *table) learn(provider, model string, fam family, text, fixed, actual int64) {
	pc, ok := t.providers[provider]
	if !ok {
		if len(t.providers) >= maxProviders {
			return
		}
		pc = newCalib(priors[fam])
	}
	k := key{provider, model}
	if mc, ok := t.models[k]; ok {
		mc.learn(text, fixed, actual)
		t.models[k] = mc
	} else if model != "" && len(t.models) < maxModels {
		mc = pc
		mc.n = 0 // its first observation replaces the provider's ratio
		mc.learn(text, fixed, actual)
		t.models[k] = mc
	}
	pc.learn(text, fixed, actual)
	t.providers[provider] = pc
}

// maxContexts bounds the responses whose context size is remembered.
const maxContexts = 4096

// contexts is the context size of recent responses by (provider, id), the
// oldest forgotten first.
type contexts struct {
	tokens map[key]int64
	order  []key // a ring of the ids in tokens, next the oldest once full
	next   int
}

func newContexts() contexts {
	return contexts{tokens: map[key]int64{}}
}

func (c *contexts) get(k key) (int64, bool) {
	if k.name == "" {
		return 0, false
	}
	n, ok := c.tokens[k]
	return n, ok
}

func (c *contexts) put(k key, n int64) {
	if _, ok := c.tokens[k]; ok {
		c.tokens[k] = n
		return
	}
	if len(c.order) < maxContexts {
		c.order = append(c.order, k)
	} else {
		delete(c.tokens, c.order[c.next])
		c.order[c.next] = k
		c.next = (c.next + 1) % maxContexts
	}
	c.tokens[k] = n
}
