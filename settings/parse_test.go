package settings_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/settings"
)

// parse parses one settings text and fails the test on error.
func parse(t *testing.T, text string) *budget.Settings {
	t.Helper()
	s, err := settings.Parse("settings.yml", []byte(text))
	if err != nil {
		t.Fatalf("Parse(%q): %v", text, err)
	}
	return s
}

// parseErr parses one settings text and returns its *Error.
func parseErr(t *testing.T, text string) *settings.Error {
	t.Helper()
	s, err := settings.Parse("settings.yml", []byte(text))
	if err == nil {
		t.Fatalf("Parse(%q) = %+v, nil; want an error", text, s)
	}
	if !errors.Is(err, budget.ErrInvalid) {
		t.Errorf("error %v does not wrap ErrInvalid", err)
	}
	var se *settings.Error
	if !errors.As(err, &se) {
		t.Fatalf("error %T %v is not a *Error", err, err)
	}
	return se
}

func TestExampleFile(t *testing.T) {
	got, err := settings.Load("../settings.example.yml")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := budget.DefaultSettings()
	want.Budget = budget.Limits{"claude": budget.Lifetime(5_000_000), "codex": budget.Lifetime(2_000_000)}
	want.Bottles["dev"] = budget.Defaults{Budget: budget.Limits{"claude": {{Tokens: 1_000_000, Window: budget.DayWindow}, {Tokens: 10_000_000, Window: budget.MonthWindow}}}, Shutdown: budget.Freeze}
	want.Agents["reviewer"] = budget.Defaults{Budget: budget.Limits{"claude": budget.Lifetime(200_000)}}
	want.Providers["pi"] = []string{"ollama"}
	want.Weights["claude"] = budget.Weights{Input: 1, CacheRead: 0.1, CacheWrite: 1, Output: 1}
	want.Operators = []string{"1000", "wheel"}
	want.Rate = budget.Rates{"claude": 300_000}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("example settings:\n got %+v\nwant %+v", got, want)
	}
}

func TestLoadMissingFile(t *testing.T) {
	got, err := settings.Load(filepath.Join(t.TempDir(), "settings.yml"))
	if err != nil {
		t.Fatalf("Load(missing): %v", err)
	}
	if want := budget.DefaultSettings(); !reflect.DeepEqual(got, want) {
		t.Errorf("Load(missing) = %+v; want defaults %+v", got, want)
	}
}

func TestLoadNamesThePath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "settings.yml")
	if err := os.WriteFile(path, []byte("shutdown: stop\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := settings.Load(path)
	var se *settings.Error
	if !errors.As(err, &se) || se.File != path {
		t.Errorf("Load error = %v; want a *Error with File %q", err, path)
	}
}

func TestEmptyFilesAreDefaults(t *testing.T) {
	for _, in := range []string{"", "\n", "# only a comment\n", "---\n", "~\n"} {
		t.Run(fmt.Sprintf("%q", in), func(t *testing.T) {
			if got, want := parse(t, in), budget.DefaultSettings(); !reflect.DeepEqual(got, want) {
				t.Errorf("got %+v; want defaults %+v", got, want)
			}
		})
	}
}

func TestErrorFormat(t *testing.T) {
	text := "budget:\n  codex: 1M\n\n  claude: 5Q\n"
	_, err := settings.Parse("settings.yml", []byte(text))
	want := "settings.yml:4:11: budget.claude: \"5Q\" is not a token amount (want e.g. 5000000, 5_000_000, 5M, 200k, 1.5M)\n" +
		"   4 |   claude: 5Q\n" +
		"     |           ^"
	if err == nil || err.Error() != want {
		t.Errorf("error:\n got %v\nwant %s", err, want)
	}
	se := parseErr(t, text)
	if got := (settings.Error{File: se.File, Line: se.Line, Column: se.Column, Key: se.Key, Msg: se.Msg}); got != (settings.Error{
		File: "settings.yml", Line: 4, Column: 11, Key: "budget.claude",
		Msg: `"5Q" is not a token amount (want e.g. 5000000, 5_000_000, 5M, 200k, 1.5M)`,
	}) {
		t.Errorf("fields = %+v", got)
	}
}

func TestErrorFormatKeepsTabsAndCRLF(t *testing.T) {
	_, err := settings.Parse("s.yml", []byte("warn_at: 80%\r\nshutdown: \"a\tb\" # x\r\n"))
	want := "s.yml:2:11: shutdown: \"a\\tb\" is not a policy (want cutoff, pause, freeze or kill)\n" +
		"   2 | shutdown: \"a\tb\" # x\n" +
		"     |           ^"
	if err == nil || err.Error() != want {
		t.Errorf("error:\n got %q\nwant %q", err, want)
	}
}

func TestGoodValues(t *testing.T) {
	for _, tt := range []struct {
		in    string
		check func(*budget.Settings) any
		want  any
	}{
		{"budget: {claude: 5000000}", func(s *budget.Settings) any { return s.Budget }, budget.Limits{"claude": budget.Lifetime(5_000_000)}},
		{"budget: {claude: 5_000_000}", func(s *budget.Settings) any { return s.Budget }, budget.Limits{"claude": budget.Lifetime(5_000_000)}},
		{`budget: {claude: "5_000_000"}`, func(s *budget.Settings) any { return s.Budget }, budget.Limits{"claude": budget.Lifetime(5_000_000)}},
		{"budget: {claude: 1.5M, my-llm: 0}", func(s *budget.Settings) any { return s.Budget }, budget.Limits{"claude": budget.Lifetime(1_500_000), "my-llm": budget.Lifetime(0)}},
		{"budget: {claude: 1.0}", func(s *budget.Settings) any { return s.Budget }, budget.Limits{"claude": budget.Lifetime(1)}},
		{"budget:", func(s *budget.Settings) any { return s.Budget }, budget.Limits{}},
		{"shutdown: freeze", func(s *budget.Settings) any { return s.Shutdown }, budget.Freeze},
		{"shutdown: kill", func(s *budget.Settings) any { return s.Shutdown }, budget.Kill},
		{`shutdown: "cutoff"`, func(s *budget.Settings) any { return s.Shutdown }, budget.Cutoff},
		{"precedence: strict", func(s *budget.Settings) any { return s.Precedence }, budget.Strict},
		{"precedence: nearest", func(s *budget.Settings) any { return s.Precedence }, budget.Nearest},
		{"warn_at: 80%", func(s *budget.Settings) any { return s.WarnAt }, 0.8},
		{"warn_at: 87.5%", func(s *budget.Settings) any { return s.WarnAt }, 0.875},
		{"warn_at: 100%", func(s *budget.Settings) any { return s.WarnAt }, 1.0},
		{"warn_at: 0.5", func(s *budget.Settings) any { return s.WarnAt }, 0.5},
		{"warn_at: 1", func(s *budget.Settings) any { return s.WarnAt }, 1.0},
		{"bottles: {dev: {shutdown: kill}}", func(s *budget.Settings) any { return s.Bottles }, map[string]budget.Defaults{"dev": {Shutdown: budget.Kill}}},
		{"bottles: {dev: }", func(s *budget.Settings) any { return s.Bottles }, map[string]budget.Defaults{"dev": {}}},
		{"agents: {reviewer: {budget: {codex: 2k}, shutdown: freeze}}", func(s *budget.Settings) any { return s.Agents },
			map[string]budget.Defaults{"reviewer": {Budget: budget.Limits{"codex": budget.Lifetime(2000)}, Shutdown: budget.Freeze}}},
		{"operators: [0, 1000, wheel, docker-users, \"1001\"]", func(s *budget.Settings) any { return s.Operators }, []string{"0", "1000", "wheel", "docker-users", "1001"}},
		{"operators:", func(s *budget.Settings) any { return s.Operators }, []string(nil)},
		{"socket: /run/bottlecap/bottlecap.sock", func(s *budget.Settings) any { return s.Socket }, "/run/bottlecap/bottlecap.sock"},
		{"socket: /tmp//x/../b.sock", func(s *budget.Settings) any { return s.Socket }, "/tmp/b.sock"},
		{"socket: /tmp/b.sock", func(s *budget.Settings) any { return s.AllowanceTTL }, budget.DefaultAllowanceTTL},
		{"allowance_ttl: 30s", func(s *budget.Settings) any { return s.AllowanceTTL }, 30 * time.Second},
		{"allowance_ttl: 2m", func(s *budget.Settings) any { return s.AllowanceTTL }, 2 * time.Minute},
		{"allowance_ttl: 1s", func(s *budget.Settings) any { return s.AllowanceTTL }, time.Second},
		{"allowance_ttl: 1h", func(s *budget.Settings) any { return s.AllowanceTTL }, time.Hour},
	} {
		t.Run(tt.in, func(t *testing.T) {
			if got := tt.check(parse(t, tt.in)); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v; want %#v", got, tt.want)
			}
		})
	}
}

// errCase is one settings text and the error it must give.
type errCase struct {
	in        string
	line, col int
	key, msg  string // msg: a substring of Msg
}

func checkErrors(t *testing.T, cases []errCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.in, func(t *testing.T) {
			se := parseErr(t, tt.in)
			if se.Line != tt.line || se.Column != tt.col || se.Key != tt.key || !strings.Contains(se.Msg, tt.msg) {
				t.Errorf("got %d:%d %q %q; want %d:%d %q containing %q\n%v",
					se.Line, se.Column, se.Key, se.Msg, tt.line, tt.col, tt.key, tt.msg, se)
			}
		})
	}
}

func TestBadValues(t *testing.T) {
	checkErrors(t, []errCase{
		{"budget: 5M", 1, 9, "budget", `want a mapping, got "5M"`},
		{"budget:\n  claude: 5Q", 2, 11, "budget.claude", `"5Q" is not a token amount`},
		{"budget:\n  claude: -5", 2, 11, "budget.claude", `"-5" is negative`},
		{"budget:\n  claude: 1.5", 2, 11, "budget.claude", `"1.5" is not a whole number of tokens`},
		{"budget:\n  claude: 99999999999G", 2, 11, "budget.claude", "is too large"},
		{"budget:\n  claude:", 2, 3, "budget.claude", "missing value"},
		{"budget:\n  claude: [[1]]", 2, 12, "budget.claude[0]", "want a limit such as 5M/day, got a list"},
		{"budget:\n  claude: {day: 1}", 2, 11, "budget.claude", "want a single value, got a mapping"},
		{"budget:\n  bad name: 1", 2, 3, "budget.bad name", `"bad name" is not a provider name`},
		{"shutdown: stop", 1, 11, "shutdown", `"stop" is not a policy (want cutoff, pause, freeze or kill)`},
		{"shutdown:", 1, 1, "shutdown", "missing value"},
		{"shutdown: Cutoff", 1, 11, "shutdown", `"Cutoff" is not a policy`},
		{"precedence: loose", 1, 13, "precedence", `"loose" is not a precedence (want nearest or strict)`},
		{"warn_at: 80", 1, 10, "warn_at", `"80" is more than 1; write 80% for a percentage`},
		{"warn_at: 0%", 1, 10, "warn_at", "out of range"},
		{"warn_at: 0", 1, 10, "warn_at", "out of range"},
		{"warn_at: -10%", 1, 10, "warn_at", "out of range"},
		{"warn_at: 120%", 1, 10, "warn_at", "out of range"},
		{"warn_at: 101", 1, 10, "warn_at", "out of range"},
		{"warn_at: eighty", 1, 10, "warn_at", `"eighty" is not a percentage`},
		{"warn_at: .nan", 1, 10, "warn_at", "is not a percentage"},
		{"bottles:\n  dev:\n    shutdown: nap", 3, 15, "bottles.dev.shutdown", `"nap" is not a policy`},
		{"bottles:\n  dev:\n    budget:\n      claude: lots", 4, 15, "bottles.dev.budget.claude", `"lots" is not a token amount`},
		{"bottles:\n  -dev: {}", 2, 3, "bottles.-dev", `"-dev" is not a bottle name`},
		{"bottles: [dev]", 1, 10, "bottles", "want a mapping, got a list"},
		{"agents:\n  reviewer: freeze", 2, 13, "agents.reviewer", `want a mapping, got "freeze"`},
		{"agents:\n  a/b: {}", 2, 3, "agents.a/b", `"a/b" is not a agent name`},
		{"operators: wheel", 1, 12, "operators", `want a list of uids and group names, got "wheel"`},
		{"operators:\n  - -1", 2, 5, "operators[0]", "-1 is not a uid"},
		{"operators:\n  - 1000\n  - 99999999999", 3, 5, "operators[1]", "99999999999 is not a uid"},
		{"operators:\n  - 1.5", 2, 5, "operators[0]", `want a uid or group name, got "1.5"`},
		{"operators:\n  - two words", 2, 5, "operators[0]", `want a uid or group name, got "two words"`},
		{"operators:\n  - {a: 1}", 2, 5, "operators[0]", "want a uid or group name, got a mapping"},
		{"socket: run/bottlecap.sock", 1, 9, "socket", `"run/bottlecap.sock" is not an absolute path`},
		{"socket: /" + strings.Repeat("x", 107), 1, 9, "socket", "too long for a unix socket"},
		{"socket:", 1, 1, "socket", "missing value"},
		{"allowance_ttl: 30", 1, 16, "allowance_ttl", `"30" is not a duration (want e.g. 30s or 2m)`},
		{"allowance_ttl: soon", 1, 16, "allowance_ttl", `"soon" is not a duration`},
		{"allowance_ttl: 500ms", 1, 16, "allowance_ttl", "500ms is out of range (want from 1s to 1h0m0s)"},
		{"allowance_ttl: -30s", 1, 16, "allowance_ttl", "-30s is out of range"},
		{"allowance_ttl: 2h", 1, 16, "allowance_ttl", "2h is out of range"},
		{"allowance_ttl: [30s]", 1, 16, "allowance_ttl", "want a single value, got a list"},
	})
}

func TestUnknownKeys(t *testing.T) {
	checkErrors(t, []errCase{
		{"budgets:\n  claude: 1M", 1, 1, "budgets", `unknown key "budgets" (want budget, shutdown, precedence, warn_at, bottles, agents, providers, weights, operators, socket, allowance_ttl, rate, rate_policy, timezone, notify or fleet)`},
		{"shutdown: cutoff\nwarn: 80%", 2, 1, "warn", `unknown key "warn"`},
		{"bottles:\n  dev:\n    budgets: {}", 3, 5, "bottles.dev.budgets", `unknown key "budgets" (want budget, shutdown or rate)`},
		{"agents:\n  reviewer:\n    shutdown: kill\n    policy: kill", 4, 5, "agents.reviewer.policy", `unknown key "policy" (want budget, shutdown or rate)`},
		{"weights:\n  claude:\n    cache_reads: 0.1", 3, 5, "weights.claude.cache_reads", `unknown key "cache_reads" (want input, cache_read, cache_write or output)`},
		{"weights: {claude: {in: 1}}", 1, 20, "weights.claude.in", `unknown key "in"`},
		{"Budget: {}", 1, 1, "Budget", `unknown key "Budget"`},
	})
}

func TestOutsideTheSubset(t *testing.T) {
	checkErrors(t, []errCase{
		{"shutdown: &p cutoff", 1, 11, "shutdown", "anchors (&) are not supported"},
		{"bottles:\n  dev: &d\n    shutdown: kill\n  ci: *d", 2, 8, "bottles.dev", "anchors (&) are not supported"},
		{"operators:\n  - *u", 0, 0, "", "unknown anchor 'u' referenced"}, // an alias needs an anchor, refused first
		{"socket: |\n  /run/x.sock", 1, 9, "socket", "block scalars (| and >) are not supported"},
		{"bottles:\n  dev:\n    shutdown: >\n      kill", 3, 15, "bottles.dev.shutdown", "block scalars (| and >) are not supported"},
		{"providers:\n  pi:\n    - |\n      ollama", 3, 7, "providers.pi[0]", "block scalars (| and >) are not supported"},
		{"shutdown: !!str kill", 1, 11, "shutdown", "tags (!) are not supported"},
		{"<<: {shutdown: kill}", 1, 1, "", "merge keys (<<) are not supported"},
		{"? shutdown\n: kill", 1, 1, "", "complex keys (?) are not supported"},
		{"shutdown: kill\n---\nshutdown: cutoff", 3, 1, "", "only one YAML document is allowed"},
		{"- shutdown: kill", 1, 1, "", "want a mapping, got a list"},
	})
}

func TestSyntaxErrors(t *testing.T) {
	checkErrors(t, []errCase{
		{"shutdown: kill\nshutdown: cutoff", 2, 1, "", `mapping key "shutdown" already defined`},
		{"budget:\n  claude: 1M\n claude: 2M", 3, 2, "", "not allowed in this context"},
		{"operators: [1000, wheel", 1, 12, "", "']' not found"},
		{"socket: \"/run/x.sock", 1, 9, "", "could not find end character of double-quoted text"},
		{"budget:\n\tclaude: 1M", 2, 1, "", "cannot start any token"},
	})
}

func TestSyntaxErrorFormat(t *testing.T) {
	_, err := settings.Parse("settings.yml", []byte("shutdown: kill\nshutdown: cutoff\n"))
	want := "settings.yml:2:1: mapping key \"shutdown\" already defined at [1:1]\n" +
		"   2 | shutdown: cutoff\n" +
		"     | ^"
	if err == nil || err.Error() != want {
		t.Errorf("error:\n got %v\nwant %s", err, want)
	}
}

func TestWeights(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want budget.Weights
	}{
		{"weights: {claude: {cache_read: 0.1}}", budget.Weights{Input: 1, CacheRead: 0.1, CacheWrite: 1, Output: 1}},
		{"weights: {claude: {input: 2, cache_write: 1.25, output: 0}}", budget.Weights{Input: 2, CacheRead: 1, CacheWrite: 1.25, Output: 0}},
		{"weights: {claude: {}}", budget.UnitWeights},
		{"weights: {claude: }", budget.UnitWeights},
	} {
		t.Run(tt.in, func(t *testing.T) {
			s := parse(t, tt.in)
			if got := s.WeightsFor("claude"); got != tt.want {
				t.Errorf("WeightsFor(claude) = %+v; want %+v", got, tt.want)
			}
			if got := s.WeightsFor("codex"); got != budget.UnitWeights {
				t.Errorf("WeightsFor(codex) = %+v; want unit weights", got)
			}
		})
	}
	checkErrors(t, []errCase{
		{"weights:\n  claude:\n    cache_read: -0.1", 3, 17, "weights.claude.cache_read", `"-0.1" is negative`},
		{"weights:\n  claude:\n    output: lots", 3, 13, "weights.claude.output", `"lots" is not a weight`},
		{"weights:\n  claude:\n    output: .inf", 3, 13, "weights.claude.output", `".inf" is not a weight`},
		{"weights:\n  claude: 0.1", 2, 11, "weights.claude", `want a mapping, got "0.1"`},
		{"weights:\n  claude: {input: 0, cache_read: 0, cache_write: 0, output: 0}", 2, 3, "weights.claude", "every weight is 0"},
	})
}

func TestProviders(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want map[string][]string
	}{
		{"providers: {pi: ollama}", map[string][]string{"pi": {"ollama"}}},
		{"providers: {pi: ollama localhost:11434}", map[string][]string{"pi": {"ollama", "localhost:11434"}}},
		{"providers:\n  pi:\n    - ollama\n    - 10.0.0.5:11434\n    - \"[::1]:8080\"", map[string][]string{"pi": {"ollama", "10.0.0.5:11434", "[::1]:8080"}}},
		{"providers: {claude: [API.Example.com]}", map[string][]string{"claude": {"api.example.com"}}},
		{"providers: {codex: api.openai.com}", map[string][]string{"codex": {"api.openai.com"}}},
		{"providers: {codex: [], work: [chatgpt.com]}", map[string][]string{"codex": {}, "work": {"chatgpt.com"}}},
		{"providers: {codex: }", map[string][]string{"codex": {}}},
	} {
		t.Run(tt.in, func(t *testing.T) {
			want := budget.DefaultProviders()
			for p, hosts := range tt.want {
				want[p] = hosts
			}
			if got := parse(t, tt.in).Providers; !reflect.DeepEqual(got, want) {
				t.Errorf("Providers = %v; want %v", got, want)
			}
		})
	}
	checkErrors(t, []errCase{
		{"providers:\n  pi: api.openai.com", 2, 7, "providers.pi", `host "api.openai.com" already belongs to codex`},
		{"providers:\n  pi: [ollama]\n  local:\n    - llm\n    - ollama", 5, 7, "providers.local", `host "ollama" already belongs to pi`},
		{"providers:\n  pi: ollama ollama", 2, 7, "providers.pi", `host "ollama" already belongs to pi`},
		{"providers:\n  pi: https://ollama:11434/v1", 2, 7, "providers.pi", `"https://ollama:11434/v1" is not a host`},
		{"providers:\n  pi:\n    - ollama\n    - [a]", 4, 7, "providers.pi[1]", "want a host, got a list"},
		{"providers:\n  pi: {host: ollama}", 2, 7, "providers.pi", "want a list of hosts or a space-separated string, got a mapping"},
		{"providers:\n  p i: ollama", 2, 3, "providers.p i", `"p i" is not a provider name`},
	})
}

func TestProviderForHostAfterParse(t *testing.T) {
	s := parse(t, "providers:\n  pi: ollama\n  work: chatgpt.com\n  codex: api.openai.com\n")
	for host, want := range map[string]string{
		"ollama":            "pi",
		"chatgpt.com":       "work",
		"api.openai.com":    "codex",
		"api.anthropic.com": "claude",
		"example.com":       "",
	} {
		if got := s.ProviderForHost(host); got != want {
			t.Errorf("ProviderForHost(%q) = %q; want %q", host, got, want)
		}
	}
}

func TestParseDoesNotShareDefaults(t *testing.T) {
	parse(t, "providers: {claude: [x.example]}\nbottles: {dev: {}}")
	if got := budget.DefaultSettings(); !reflect.DeepEqual(got.Providers, budget.DefaultProviders()) || len(got.Bottles) != 0 {
		t.Errorf("DefaultSettings changed by a parse: %+v", got)
	}
}

// TestRate: rate guards globally, per bottle name and per agent name, and
// the rate policy; every bad guard is named with its position.
func TestRate(t *testing.T) {
	s := parse(t, "rate:\n  claude: 300k/min\n  codex: 1.5M/min\nrate_policy: cutoff\nshutdown: pause\n"+
		"bottles:\n  dev:\n    rate:\n      claude: 100k/min\nagents:\n  reviewer:\n    rate: {gemini: 5k/min}\n")
	if want := (budget.Rates{"claude": 300_000, "codex": 1_500_000}); !reflect.DeepEqual(s.Rate, want) {
		t.Errorf("Rate = %v, want %v", s.Rate, want)
	}
	if s.RatePolicy != budget.Cutoff || s.Shutdown != budget.Pause {
		t.Errorf("rate_policy %s, shutdown %s; want cutoff, pause", s.RatePolicy, s.Shutdown)
	}
	if got := s.Bottles["dev"].Rate["claude"]; got != 100_000 {
		t.Errorf("bottles.dev.rate.claude = %d, want 100000", got)
	}
	if got := s.Agents["reviewer"].Rate["gemini"]; got != 5000 {
		t.Errorf("agents.reviewer.rate.gemini = %d, want 5000", got)
	}
	if d := parse(t, "budget: {claude: 1M}"); d.RatePolicy != budget.Pause || len(d.Rate) != 0 {
		t.Errorf("defaults: rate %v, policy %s; want none, pause", d.Rate, d.RatePolicy)
	}
	checkErrors(t, []errCase{
		{"rate:\n  claude: 300k", 2, 11, "rate.claude", `"300k" has no unit: a rate guard is tokens per minute, e.g. 300k/min`},
		{"rate:\n  claude: 300k/h", 2, 11, "rate.claude", `"300k/h": a rate guard is per minute only (want e.g. 300k/min)`},
		{"rate:\n  claude: 0/min", 2, 11, "rate.claude", "must be above 0"},
		{"rate:\n  claude: lots/min", 2, 11, "rate.claude", `"lots" is not a token amount`},
		{"rate:\n  bad name: 1k/min", 2, 3, "rate.bad name", `"bad name" is not a provider name`},
		{"rate: 300k/min", 1, 7, "rate", `want a mapping, got "300k/min"`},
		{"rate_policy: stop", 1, 14, "rate_policy", `"stop" is not a policy (want cutoff, pause, freeze or kill)`},
		{"bottles:\n  dev:\n    rate:\n      claude: 5k/day", 4, 15, "bottles.dev.rate.claude", "per minute only"},
		{"agents:\n  reviewer:\n    rate: {claude: 5k}", 3, 20, "agents.reviewer.rate.claude", "has no unit"},
	})
}
