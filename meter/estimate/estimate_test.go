package estimate_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/meter/estimate"
	"github.com/bot-bottle/bottlecap/meter/usage"
)

// request is one coding-agent request body of testdata (provenance in
// testdata/requests.src.txt).
type request struct {
	File      string       `json:"file"`
	Format    usage.Format `json:"format"`
	Model     string       `json:"model"`
	Images    int64        `json:"images"`
	Tools     bool         `json:"tools"`
	Reference int64        `json:"o200k_reference"`
}

func (r request) body(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", r.File))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func requests(t testing.TB) []request {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "requests.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rs []request
	if err := json.Unmarshal(b, &rs); err != nil {
		t.Fatal(err)
	}
	return rs
}

// TestInputRequests: the coding-agent bodies are read whole, their
// attachments found, and the uncalibrated estimate of the OpenAI ones errs
// high against an o200k reference count, but by less than 80%.
func TestInputRequests(t *testing.T) {
	for _, r := range requests(t) {
		t.Run(r.File, func(t *testing.T) {
			body := r.body(t)
			s := estimate.Scan(body)
			if !s.OK || s.Images != r.Images || s.Tools != r.Tools || s.Model != r.Model {
				t.Fatalf("Scan = ok %t, %d images, tools %t, model %q; want ok, %d images, tools %t, model %q",
					s.OK, s.Images, s.Tools, s.Model, r.Images, r.Tools, r.Model)
			}
			est := estimate.New().Input("p", r.Format, body)
			if est.Model != r.Model || est.Tokens <= 0 || est.Chained {
				t.Fatalf("Input = %+v, want model %q, tokens > 0, not chained", est, r.Model)
			}
			t.Logf("%d bytes: %d counted, %d images, estimate %d tokens", len(body), s.Text, s.Images, est.Tokens)
			if r.Reference == 0 {
				return
			}
			ratio := float64(est.Tokens) / float64(r.Reference)
			t.Logf("estimate / o200k reference = %d / %d = %.2f", est.Tokens, r.Reference, ratio)
			if ratio < 1 || ratio > 1.8 {
				t.Errorf("estimate %d is %.2f× the reference %d, want between 1 and 1.8", est.Tokens, ratio, r.Reference)
			}
		})
	}
}

// TestInputUnparsed: a body that is not a JSON object still costs a third
// of a token a byte, never 0 when it is not empty.
func TestInputUnparsed(t *testing.T) {
	e := estimate.New()
	for _, body := range []string{"x", "not json at all", `{"messages":[`, `[1]`} {
		got := e.Input("p", usage.OpenAIChat, []byte(body))
		if want := int64(len(body)+2) / 3; got.Tokens != want {
			t.Errorf("Input(%q) = %d tokens, want %d", body, got.Tokens, want)
		}
	}
	if got := e.Input("p", usage.OpenAIChat, nil); got.Tokens != 0 {
		t.Errorf("Input(empty) = %d tokens, want 0", got.Tokens)
	}
	if got := e.Input("p", usage.Anthropic, []byte(`{}`)); got.Tokens != 1 {
		t.Errorf("Input({}) = %d tokens, want 1", got.Tokens)
	}
}

// TestInputGrowsWithText: more text, more tokens; an image costs the same
// whatever its size.
func TestInputGrowsWithText(t *testing.T) {
	e := estimate.New()
	body := func(text, img string) []byte {
		return fmt.Appendf(nil, `{"messages":[{"role":"user","content":[{"type":"text","text":%q},{"type":"image_url","image_url":{"url":"data:image/png;base64,%s"}}]}]}`, text, img)
	}
	small := e.Input("p", usage.OpenAIChat, body("hello", b64)).Tokens
	big := e.Input("p", usage.OpenAIChat, body(string(make([]byte, 4000)), b64)).Tokens
	hugeImage := e.Input("p", usage.OpenAIChat, body("hello", b64+b64+b64+b64)).Tokens
	if big <= small {
		t.Errorf("4,000 more bytes of text: %d tokens, want more than %d", big, small)
	}
	if hugeImage != small {
		t.Errorf("a four times larger image: %d tokens, want %d", hugeImage, small)
	}
}

func TestModelFromPath(t *testing.T) {
	tests := map[string]string{
		"/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse":                      "gemini-2.5-flash",
		"/v1beta/models/gemini-2.5-pro:generateContent":                                      "gemini-2.5-pro",
		"/v1/projects/p/locations/l/publishers/google/models/gemini-2.5-pro:generateContent": "gemini-2.5-pro",
		"/v1/messages":                       "",
		"/v1beta/models/a/b:generateContent": "",
	}
	for path, want := range tests {
		if got := estimate.ModelFromPath(path); got != want {
			t.Errorf("ModelFromPath(%q) = %q, want %q", path, got, want)
		}
	}
}

// TestInputModel: Gemini names its model in the path; the body's wins.
func TestInputModel(t *testing.T) {
	e := estimate.New()
	if got := e.InputModel("g", "gemini-2.5-pro", usage.Gemini, []byte(`{"contents":[]}`)); got.Model != "gemini-2.5-pro" {
		t.Errorf("model = %q, want the path's", got.Model)
	}
	if got := e.InputModel("g", "from-path", usage.OpenAIChat, []byte(`{"model":"gpt-4o"}`)); got.Model != "gpt-4o" {
		t.Errorf("model = %q, want the body's", got.Model)
	}
}

// TestLearnIgnores: estimates that cannot teach (unparsed, chained, no
// count) leave the ratio as it was.
func TestLearnIgnores(t *testing.T) {
	e := estimate.New()
	body := []byte(`{"model":"m","input":"some words to count"}`)
	before := e.Input("p", usage.OpenAIResponses, body)
	e.Learn("p", e.Input("p", usage.OpenAIResponses, []byte("not json")), 1_000_000)
	e.Learn("p", e.Input("p", usage.OpenAIResponses, []byte(`{"model":"m","previous_response_id":"r","input":"x"}`)), 1_000_000)
	e.Learn("p", before, 0)
	if got := e.Input("p", usage.OpenAIResponses, body); got != before {
		t.Errorf("after ignored observations: %+v, want %+v", got, before)
	}
	if models, providers := estimate.Tracked(e); models != 0 || providers != 0 {
		t.Errorf("tracking %d models, %d providers, want none", models, providers)
	}
}

// TestOutlier: one report far off the ratio moves a warmed-up estimate
// by a bounded factor.
func TestOutlier(t *testing.T) {
	e := estimate.New()
	body := []byte(`{"model":"m","messages":[{"role":"user","content":"` + string(make([]byte, 0)) + `the quick brown fox jumps over the lazy dog, again and again and again"}]}`)
	for range 30 {
		est := e.Input("p", usage.OpenAIChat, body)
		e.Learn("p", est, 20)
	}
	before := e.Input("p", usage.OpenAIChat, body)
	e.Learn("p", before, 100*before.Tokens)
	after := e.Input("p", usage.OpenAIChat, body)
	t.Logf("estimate %d before the outlier, %d after", before.Tokens, after.Tokens)
	if float64(after.Tokens) > 1.5*float64(before.Tokens) {
		t.Errorf("after one report 100× off: %d tokens, want at most 1.5 × %d", after.Tokens, before.Tokens)
	}
}

// TestBoundedState: model names come from clients; the ratios kept stay
// bounded, and a model beyond the cap shares its provider's ratio.
func TestBoundedState(t *testing.T) {
	e := estimate.New()
	body := func(model string) []byte {
		return []byte(`{"model":"` + model + `","messages":[{"role":"user","content":"count these words please"}]}`)
	}
	for i := range 1000 {
		m := fmt.Sprintf("model-%d", i)
		e.Learn(fmt.Sprintf("p%d", i%100), e.Input("p", usage.OpenAIChat, body(m)), 10)
	}
	models, providers := estimate.Tracked(e)
	t.Logf("after 1,000 models of 100 providers: %d models, %d providers tracked", models, providers)
	if models > 256 || providers > 64 {
		t.Errorf("tracking %d models and %d providers, want at most 256 and 64", models, providers)
	}
	untracked := e.Input("p0", usage.OpenAIChat, body("model-900"))
	shared := e.Input("p0", usage.OpenAIChat, body("never-seen"))
	if untracked.Tokens != shared.Tokens {
		t.Errorf("an untracked model: %d tokens, want the provider's %d", untracked.Tokens, shared.Tokens)
	}
}

// TestConcurrent: estimates and observations from many goroutines (run
// with -race).
func TestConcurrent(t *testing.T) {
	e := estimate.New()
	body := []byte(`{"model":"m","messages":[{"role":"user","content":"hello there"}]}`)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				est := e.Input(fmt.Sprint("p", g%2), usage.OpenAIChat, body)
				e.Learn(est.Model, est, int64(5+i%3))
				e.LearnOutput("p", "m", 100, int64(25+i%5))
				if e.Output("p", "m", 100) <= 0 {
					t.Error("Output of 100 bytes is 0")
					return
				}
			}
		}()
	}
	wg.Wait()
}

// TestOutput: delta bytes become tokens through the family's prior, then
// through the ratio that reports teach.
func TestOutput(t *testing.T) {
	e := estimate.New()
	if got := e.Output("p", "claude-sonnet-4", 0); got != 0 {
		t.Errorf("Output(0 bytes) = %d, want 0", got)
	}
	if a, b := e.Output("p", "claude-sonnet-4", 100), e.Output("p", "claude-sonnet-4", 1000); a <= 0 || b <= a {
		t.Errorf("Output(100), Output(1000) = %d, %d, want 0 < first < second", a, b)
	}
	// A model that spends 1 token every 2 bytes shown.
	for range 40 {
		e.LearnOutput("p", "r", 1000, 500)
	}
	got := e.Output("p", "r", 2000)
	if got < 1000 || got > 1100 {
		t.Errorf("after 40 reports of 500 tokens per 1,000 bytes, Output(2,000 bytes) = %d, want 1,000 to 1,100", got)
	}
}

// TestPreviousResponse: a Responses request continuing a stored response
// carries that response's context; told of it, the estimator adds it, and
// the request can teach; not told, the estimate says it is chained.
func TestPreviousResponse(t *testing.T) {
	e := estimate.New()
	body := []byte(`{"model":"gpt-5","previous_response_id":"resp_1","input":[{"role":"user","content":"and now?"}]}`)
	alone := e.Input("openai", usage.OpenAIResponses, body)
	if !alone.Chained {
		t.Fatalf("unknown previous response: %+v, want chained", alone)
	}
	e.Responded("openai", "resp_1", budget.Usage{Input: 1000, CacheRead: 9000, Output: 500})
	e.Responded("other", "resp_1", budget.Usage{Input: 1})
	got := e.Input("openai", usage.OpenAIResponses, body)
	if got.Chained || got.Tokens < alone.Tokens+10_500 {
		t.Fatalf("after Responded: %+v, want not chained and at least %d tokens", got, alone.Tokens+10_500)
	}
	for i := range 5000 { // the oldest responses are forgotten
		e.Responded("openai", fmt.Sprint("resp_x", i), budget.Usage{Input: 1})
	}
	if again := e.Input("openai", usage.OpenAIResponses, body); !again.Chained {
		t.Errorf("after 5,000 newer responses: %+v, want resp_1 forgotten", again)
	}
}
