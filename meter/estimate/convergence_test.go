package estimate_test

import (
	"encoding/json"
	"math/rand"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/bot-bottle/bottlecap/meter/estimate"
	"github.com/bot-bottle/bottlecap/meter/usage"
)

// fakeTokens is a stand-in tokenizer whose count is a known function of
// the text, shaped like a BPE: a word of up to six letters is one token
// (a space before it included), longer words one more per six letters;
// three digits a token; each other ASCII symbol and each run of other
// whitespace a token; each non-ASCII character a token. scale stretches it
// (a tokenizer that cuts the same text finer).
func fakeTokens(s string, scale float64) int64 {
	var n int64
	rs := []rune(s)
	for i := 0; i < len(rs); {
		r := rs[i]
		j := i + 1
		switch {
		case r < 128 && unicode.IsLetter(r):
			for j < len(rs) && rs[j] < 128 && unicode.IsLetter(rs[j]) {
				j++
			}
			n += int64(1 + (j-i-1)/6)
		case unicode.IsDigit(r):
			for j < len(rs) && unicode.IsDigit(rs[j]) {
				j++
			}
			n += int64(1 + (j-i-1)/3)
		case r == ' ' && j < len(rs) && rs[j] < 128 && unicode.IsLetter(rs[j]):
			// joins the word that follows
		case unicode.IsSpace(r):
			for j < len(rs) && unicode.IsSpace(rs[j]) && rs[j] != ' ' {
				j++
			}
			n++
		default:
			n++
		}
		i = j
	}
	return int64(float64(n)*scale + 0.5)
}

// agentTraffic generates the requests of a coding agent: conversations
// that grow a few messages a turn (prose, Go code, JSON tool output, logs,
// sometimes Japanese), with a system prompt and tools, in one of the
// formats; truth is fakeTokens of the text plus 4 tokens a message, plus
// the system prompt a provider adds for tools (346 tokens for Claude, as
// Anthropic documents).
type agentTraffic struct {
	rng         *rand.Rand
	format      usage.Format
	model       string
	scale       float64
	hiddenTools int64
	msgs        []string
}

var (
	words = strings.Fields("the a to of and in is that for it with as on be this file function return value error test stream budget token meter request response should would could because when then read write parse count limit allowance provider model context window cache")
	code  = []string{
		"func (p *Parser) Write(b []byte) (int, error) {\n\tp.mu.Lock()\n\tdefer p.mu.Unlock()\n\tp.fr.write(b)\n\treturn len(b), nil\n}\n",
		"\tif err := json.Unmarshal(data, &e); err != nil {\n\t\treturn fmt.Errorf(\"decode %s: %w\", name, err)\n\t}\n",
		"for i := 0; i < len(rs); i++ {\n\tswitch c := rs[i]; c {\n\tcase '\"':\n\t\tn++\n\t}\n}\n",
	}
	logs = []string{
		"=== RUN   TestLongSSEStream\n--- PASS: TestLongSSEStream (2.05s)\nok  \tgithub.com/bot-bottle/bottlecap/meter/usage\t4.615s\n",
		"2025-12-07T19:24:03.512Z INFO meter forwarded request id=req_0193 bottle=web-1 tokens=20481 status=200 latency_ms=1834\n",
	}
	jsons = []string{`{"id":"call_81","status":"ok","rows":[{"n":1,"v":"alpha"},{"n":22,"v":"beta"}],"total":2}`}
	cjk   = "この関数はストリームを読みながら使用量を数えます。"
)

func (a *agentTraffic) text() string {
	var b strings.Builder
	parts := 1 + a.rng.Intn(6)
	for range parts {
		switch k := a.rng.Intn(10); {
		case k < 4:
			for range 5 + a.rng.Intn(60) {
				b.WriteString(words[a.rng.Intn(len(words))])
				b.WriteByte(' ')
			}
			b.WriteString(".\n")
		case k < 7:
			for range 1 + a.rng.Intn(20) {
				b.WriteString(code[a.rng.Intn(len(code))])
			}
		case k < 8:
			b.WriteString(logs[a.rng.Intn(len(logs))])
		case k < 9:
			b.WriteString(jsons[0])
		default:
			b.WriteString(cjk)
		}
	}
	return b.String()
}

// next is the next request: its body and its true input tokens.
func (a *agentTraffic) next() ([]byte, int64) {
	if len(a.msgs) > 40 || a.rng.Intn(20) == 0 {
		a.msgs = a.msgs[:0]
	}
	for range 1 + a.rng.Intn(3) {
		a.msgs = append(a.msgs, a.text())
	}
	system := "You are a coding agent. Read files before editing them and keep answers short."
	tool := map[string]any{"name": "read_file", "description": "Read a file of the repository.",
		"parameters": map[string]any{"type": "object", "properties": map[string]any{"path": map[string]any{"type": "string"}}}}
	toolJSON, _ := json.Marshal(tool)
	truth := fakeTokens(system, a.scale) + 4 + fakeTokens(string(toolJSON), a.scale) + a.hiddenTools
	var msgs []any
	for i, m := range a.msgs {
		truth += fakeTokens(m, a.scale) + 4
		role := []string{"user", "assistant"}[i%2]
		msgs = append(msgs, map[string]any{"role": role, "content": m})
	}
	var body map[string]any
	switch a.format {
	case usage.Anthropic:
		body = map[string]any{"model": a.model, "max_tokens": 8192, "system": system, "tools": []any{tool}, "messages": msgs}
	default:
		msgs = append([]any{map[string]any{"role": "system", "content": system}}, msgs...)
		body = map[string]any{"model": a.model, "stream": true, "tools": []any{map[string]any{"type": "function", "function": tool}}, "messages": msgs}
	}
	b, err := json.Marshal(body)
	if err != nil {
		panic(err)
	}
	return b, truth
}

// TestConvergence: per model, after 30 reports the estimate of a coding
// agent's requests is within a few percent of the truth and at or above it
// for most requests; two models of one provider with different tokenizers
// are learned apart.
func TestConvergence(t *testing.T) {
	const warm, total = 30, 400
	e := estimate.New()
	traffic := []*agentTraffic{
		{format: usage.OpenAIChat, model: "gpt-4.1", scale: 1},
		{format: usage.Anthropic, model: "claude-sonnet-4-5", scale: 1.25, hiddenTools: 346},
		{format: usage.OpenAIChat, model: "claude-via-gateway", scale: 1.6, hiddenTools: 346},
	}
	for i, a := range traffic {
		a.rng = rand.New(rand.NewSource(int64(i + 1)))
	}
	type stats struct{ rel []float64 }
	got := make([]stats, len(traffic))
	for i := range total {
		for k, a := range traffic {
			body, truth := a.next()
			est := e.Input("shared-provider", a.format, body)
			if i >= warm {
				got[k].rel = append(got[k].rel, float64(est.Tokens-truth)/float64(truth))
			}
			e.Learn("shared-provider", est, truth)
		}
	}
	for k, a := range traffic {
		rel := got[k].rel
		slices.Sort(rel)
		over := 0
		var sumAbs float64
		for _, r := range rel {
			if r >= 0 {
				over++
			}
			sumAbs += max(r, -r)
		}
		frac := float64(over) / float64(len(rel))
		median, worst := rel[len(rel)/2], rel[0]
		t.Logf("%s (scale %.2f): after %d reports, over %d requests: median error %+.1f%%, mean |error| %.1f%%, worst %+.1f%%, at or above the truth %.1f%%",
			a.model, a.scale, warm, len(rel), 100*median, 100*sumAbs/float64(len(rel)), 100*worst, 100*frac)
		if median < 0 || median > 0.10 {
			t.Errorf("%s: median relative error %+.3f, want between 0 and +0.10", a.model, median)
		}
		if frac < 0.95 {
			t.Errorf("%s: %.1f%% of estimates at or above the truth, want at least 95%%", a.model, 100*frac)
		}
		if worst < -0.10 {
			t.Errorf("%s: worst underestimate %+.3f, want above -0.10", a.model, worst)
		}
	}
}

// TestConvergenceFromAFarPrior: a model whose tokenizer cuts text three
// times finer than the prior assumes is learned within a few reports.
func TestConvergenceFromAFarPrior(t *testing.T) {
	e := estimate.New()
	a := &agentTraffic{rng: rand.New(rand.NewSource(7)), format: usage.OpenAIChat, model: "fine-cut", scale: 3}
	var last float64
	for i := range 12 {
		body, truth := a.next()
		est := e.Input("p", a.format, body)
		last = float64(est.Tokens-truth) / float64(truth)
		t.Logf("report %2d: estimate %6d, truth %6d, error %+.1f%%", i, est.Tokens, truth, 100*last)
		e.Learn("p", est, truth)
	}
	if last < 0 || last > 0.25 {
		t.Errorf("after 11 reports the error is %+.3f, want between 0 and +0.25", last)
	}
}
