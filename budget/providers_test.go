package budget_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bot-bottle/bottlecap/budget"
)

var update = flag.Bool("update", false, "rewrite integrations/mitmproxy/providers.json from the provider table")

// providersFixture is where the provider table is written out for the
// Python addon's tests.
var providersFixture = filepath.Join("..", "integrations", "mitmproxy", "providers.json")

// providerTable is the fixture's content.
func providerTable(t *testing.T) []byte {
	t.Helper()
	b, err := json.MarshalIndent(struct {
		About    string               `json:"about"`
		APIs     []budget.ProviderAPI `json:"apis"`
		Refusals []budget.Refusal     `json:"refusals"`
	}{
		About: "bottlecap's provider table (budget/providers.go), written out by " +
			"`go test ./budget -run TestProviderTableFixture -update`; do not edit. " +
			"test_bottlecap_addon.py holds the addon's own tables to it.",
		APIs:     budget.ProviderAPIs(),
		Refusals: budget.Refusals(),
	}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// TestProviderTableFixture fails when providers.json is not the table as
// it is now, so the addon's tests never check against a stale copy.
func TestProviderTableFixture(t *testing.T) {
	want := providerTable(t)
	if *update {
		if err := os.WriteFile(providersFixture, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(providersFixture)
	if err != nil {
		t.Fatalf("%v (run go test ./budget -run TestProviderTableFixture -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is stale: run go test ./budget -run TestProviderTableFixture -update", providersFixture)
	}
}

// TestProviderTableIsWhole checks each row has what the meter and the
// addon derive from it: a fallback API, unique families, hosts and
// endpoint paths (a provider may span APIs, as Codex spans the OpenAI API
// and ChatGPT's backend, but a host or path names one API), every
// refusal's kind, an envelope carrying the message, and exact paths that
// end in their own suffix.
func TestProviderTableIsWhole(t *testing.T) {
	apis := budget.ProviderAPIs()
	var families, hosts, paths, unmetered []string
	fallbacks := 0
	for _, api := range apis {
		if slices.Contains(families, api.Family) {
			t.Errorf("family %s listed twice", api.Family)
		}
		families = append(families, api.Family)
		for _, h := range api.Hosts {
			if slices.Contains(hosts, h) {
				t.Errorf("%s: host %s already names another API", api.Family, h)
			}
			hosts = append(hosts, h)
		}
		for _, ep := range api.Endpoints {
			if slices.Contains(paths, ep.Path+"…"+ep.Suffix) {
				t.Errorf("%s: endpoint %s already names another API", api.Family, ep.Path)
			}
			paths = append(paths, ep.Path+"…"+ep.Suffix)
		}
		if api.Fallback {
			fallbacks++
		}
		if api.Name == "" || len(api.Hosts) == 0 || len(api.Endpoints) == 0 || !strings.HasPrefix(api.BaseURL, "https://") {
			t.Errorf("%s: name, hosts, endpoints or https base URL missing: %+v", api.Family, api)
		}
		for _, ep := range api.Endpoints {
			if !ep.Matches(example(ep)) || ep.Suffix == "" {
				t.Errorf("%s: endpoint %+v does not match its own example path %q", api.Family, ep, example(ep))
			}
		}
		for _, r := range budget.Refusals() {
			if _, ok := api.Denial.Kinds[r.Name]; !ok {
				t.Errorf("%s: no error kind for refusal %s", api.Family, r.Name)
			}
		}
		if b, _ := json.Marshal(api.Denial.Envelope); !bytes.Contains(b, []byte(`"$message"`)) {
			t.Errorf("%s: the error envelope %s has no place for the message", api.Family, b)
		}
		for _, u := range api.Unmetered {
			if slices.Contains(unmetered, u.Pattern) {
				t.Errorf("%s: unmetered call %s listed twice (its pattern is the name --pass-unmetered takes)", api.Family, u.Pattern)
			}
			unmetered = append(unmetered, u.Pattern)
			if _, err := path.Match(u.Pattern, "/"); err != nil || !strings.HasPrefix(u.Pattern, "/") ||
				strings.ContainsAny(u.Pattern, `?[\`) || u.What == "" {
				t.Errorf("%s: unmetered call %+v: want a path from /, with * as its only wildcard, and what it is", api.Family, u)
			}
			if !u.Matches(unmeteredExample(u)) {
				t.Errorf("%s: unmetered call %s does not match its own example path %s", api.Family, u.Pattern, unmeteredExample(u))
			}
		}
	}
	for _, api := range apis {
		for _, ep := range api.Endpoints {
			for _, other := range apis {
				if u := budget.UnmeteredCall(other, example(ep)); u != nil {
					t.Errorf("the metered endpoint %s of %s is also refused as unmetered by %s's %s", example(ep), api.Family, other.Family, u.Pattern)
				}
			}
		}
	}
	if fallbacks != 1 {
		t.Errorf("%d fallback APIs, want exactly one", fallbacks)
	}
}

// example is a path of ep: its own path, with a model name for a prefix.
func example(ep budget.Endpoint) string {
	if strings.HasSuffix(ep.Path, "/") {
		return ep.Path + "some-model" + ep.Suffix
	}
	return ep.Path
}

func TestEndpointMatches(t *testing.T) {
	exact := budget.Endpoint{Path: "/v1/messages", Suffix: "/messages"}
	prefix := budget.Endpoint{Path: "/v1beta/models/", Suffix: ":generateContent"}
	anyPath := budget.Endpoint{Path: "/", Suffix: ":generateContent"}
	tests := []struct {
		ep   budget.Endpoint
		path string
		want bool
	}{
		{exact, "/v1/messages", true},
		{exact, "/V1/Messages", true},
		{exact, "/v1/messages/count_tokens", false},
		{exact, "/proxy/v1/messages", false},
		{exact, "/v1/me\u017fsages", false}, // folds to messages in Unicode, not in ASCII
		{prefix, "/v1beta/models/gemini-2.5-pro:generateContent", true},
		{prefix, "/V1BETA/models/gemini-2.5-pro:GENERATECONTENT", true},
		{prefix, "/v1beta/models/gemini-2.5-pro:streamGenerateContent", false},
		{prefix, "/v1beta/models/gemini-2.5-pro", false},
		{prefix, "/v1/models/gemini-2.5-pro:generateContent", false},
		{anyPath, "/v1/models/gemini-2.5-pro:generateContent", true},
		{anyPath, "/v1beta/tunedModels/my-model:generateContent", true},
		{anyPath, "/v1internal:generateContent", true},
		{anyPath, "/v1beta/models/gemini-2.5-pro:streamGenerateContent", false},
		{anyPath, "/v1beta/models/gemini-2.5-pro:countTokens", false},
	}
	for _, tt := range tests {
		if got := tt.ep.Matches(tt.path); got != tt.want {
			t.Errorf("%s matches %s = %v, want %v", tt.ep.Path+"…"+tt.ep.Suffix, tt.path, got, tt.want)
		}
	}
}

// TestEndpointCanonical: a matched path is forwarded as the table spells
// the endpoint, the model between a prefix and its suffix as sent.
func TestEndpointCanonical(t *testing.T) {
	tests := []struct {
		ep         budget.Endpoint
		path, want string
	}{
		{budget.Endpoint{Path: "/v1/messages", Suffix: "/messages"}, "/V1/MESSAGES", "/v1/messages"},
		{budget.Endpoint{Path: "/", Suffix: ":generateContent"}, "/V1BETA/models/Gemini-2.5-Pro:GENERATECONTENT",
			"/V1BETA/models/Gemini-2.5-Pro:generateContent"},
		{budget.Endpoint{Path: "/v1beta/models/", Suffix: ":generateContent"}, "/v1BETA/Models/x:generatecontent",
			"/v1beta/models/x:generateContent"},
	}
	for _, tt := range tests {
		if !tt.ep.Matches(tt.path) {
			t.Fatalf("%s does not match %s", tt.ep.Path, tt.path)
		}
		if got := tt.ep.Canonical(tt.path); got != tt.want {
			t.Errorf("Canonical(%s) = %s, want %s", tt.path, got, tt.want)
		}
	}
}

// TestEndpointExamplesRouteHome: the most specific endpoint of the whole
// table that an endpoint's own path matches is that endpoint (Code
// Assist's /v1internal:generateContent is not taken for Gemini's any-path
// method), and no two match with the same specificity.
func TestEndpointExamplesRouteHome(t *testing.T) {
	apis := budget.ProviderAPIs()
	for _, api := range apis {
		for _, ep := range api.Endpoints {
			var best budget.Endpoint
			bestAPI, ties := "", 0
			for _, other := range apis {
				for _, cand := range other.Endpoints {
					switch {
					case !cand.Matches(example(ep)):
					case bestAPI == "" || cand.Specificity() > best.Specificity():
						best, bestAPI, ties = cand, other.Family, 0
					case cand.Specificity() == best.Specificity():
						ties++
					}
				}
			}
			if bestAPI != api.Family || best != ep || ties > 0 {
				t.Errorf("%s: %s routes to %s's %+v (%d ties), want its own endpoint", api.Family, example(ep), bestAPI, best, ties)
			}
		}
	}
}

// unmeteredExample is a path of u: its pattern with an id for each "*".
func unmeteredExample(u budget.Unmetered) string {
	return strings.ReplaceAll(u.Pattern, "*", "id-1")
}

// TestUnmeteredMatches: a pattern's "*" is one segment or part of one,
// never a "/"; the rest is the path exactly, in any letter case.
func TestUnmeteredMatches(t *testing.T) {
	runs := budget.Unmetered{Pattern: "/v1/threads/*/runs"}
	embed := budget.Unmetered{Pattern: "/*/models/*:embedContent"}
	batches := budget.Unmetered{Pattern: "/v1/messages/batches"}
	tests := []struct {
		u    budget.Unmetered
		path string
		want bool
	}{
		{runs, "/v1/threads/thread_abc/runs", true},
		{runs, "/V1/Threads/thread_abc/RUNS", true},
		{runs, "/v1/threads/runs", false},
		{runs, "/v1/threads/a/b/runs", false},
		{runs, "/v1/threads/thread_abc/runs/run_1", false},
		{runs, "/v1/threads/thread_abc/messages", false},
		{embed, "/v1beta/models/gemini-embedding-001:embedContent", true},
		{embed, "/v1/models/gemini-embedding-001:embedContent", true},
		{embed, "/v1beta/models/gemini-embedding-001:batchEmbedContents", false},
		{embed, "/v1beta/models/tuned/x:embedContent", false},
		{batches, "/v1/messages/batches", true},
		{batches, "/v1/messages/batches/msgbatch_1/cancel", false},
		{batches, "/v1/messages", false},
		{batches, "/v1/messages/count_tokens", false},
	}
	for _, tt := range tests {
		if got := tt.u.Matches(tt.path); got != tt.want {
			t.Errorf("%s matches %s = %v, want %v", tt.u.Pattern, tt.path, got, tt.want)
		}
	}
}

// TestUnmeteredSparesAgentCalls: what Claude Code, Codex and the SDKs
// call besides generation — token counts, model lists, files, batch
// results, telemetry, sign-in, usage — is refused by no row.
func TestUnmeteredSparesAgentCalls(t *testing.T) {
	for _, p := range []string{
		"/v1/messages/count_tokens", "/v1/models", "/v1/models/claude-sonnet-4-5", "/v1/files",
		"/v1/messages/batches/msgbatch_1/cancel", "/v1/messages/batches/msgbatch_1/results",
		"/api/event_logging/batch", "/api/oauth/claude_cli/create_api_key", "/api/claude_code/metrics",
		"/v1/sessions", "/v1/environments/bridge",
		"/v1/responses/input_tokens", "/v1/responses/resp_1/cancel", "/v1/moderations", "/v1/conversations",
		"/v1/batches/batch_1/cancel", "/v1/fine_tuning/jobs/ftjob_1/cancel", "/v1/threads", "/v1/threads/thread_1/messages",
		"/v1/uploads", "/v1/vector_stores",
		"/backend-api/codex/models", "/backend-api/wham/usage", "/backend-api/wham/tasks/list",
		"/v1beta/models/gemini-2.5-pro:countTokens", "/v1beta/models", "/v1beta/files", "/v1beta/openai/models",
		"/v1internal:loadCodeAssist", "/v1internal:onboardUser", "/v1internal:countTokens", "/v1internal:retrieveUserQuota",
		"/v1internal:listExperiments", "/v1internal:recordCodeAssistMetrics", "/v1internal:fetchAdminControls",
	} {
		for _, api := range budget.ProviderAPIs() {
			if u := budget.UnmeteredCall(api, p); u != nil {
				t.Errorf("%s is refused by %s's %s", p, api.Family, u.Pattern)
			}
		}
	}
}

// TestDefaultProvidersFromTable: the settings defaults are SPEC section
// 2's, with Gemini Code Assist's host (Gemini CLI signed in with Google)
// for gemini, and come from the table.
func TestDefaultProvidersFromTable(t *testing.T) {
	got := budget.DefaultProviders()
	want := map[string][]string{
		"claude": {"api.anthropic.com"},
		"codex":  {"api.openai.com", "chatgpt.com"},
		"gemini": {"generativelanguage.googleapis.com", "cloudcode-pa.googleapis.com"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for p, hosts := range want {
		if !slices.Equal(got[p], hosts) {
			t.Errorf("%s: got %v, want %v", p, got[p], hosts)
		}
	}
}
