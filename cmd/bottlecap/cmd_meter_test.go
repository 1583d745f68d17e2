package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/bot-bottle/bottlecap/budget"
)

func TestMeterFlags(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
		code int
		want string
	}{
		{"no bottle", nil, nil, 2, "--bottle"},
		{"bad upstream", nil, []string{"--bottle", "dev-1", "--upstream", "mistral=https://x"}, 2, "unknown family"},
		{"bad upstream URL", nil, []string{"--bottle", "dev-1", "--upstream-openai", "api.openai.com"}, 1, "--upstream-openai"},
		{"bad listen", map[string]string{"BOTTLECAP_BOTTLE": "dev-1"}, []string{"--listen", "nonsense"}, 1, "listen on nonsense"},
		{"stray argument", nil, []string{"--bottle", "dev-1", "extra"}, 2, "unexpected argument"},
		{"unknown pass-unmetered", nil, []string{"--bottle", "dev-1", "--listen", "127.0.0.1:0", "--pass-unmetered", "/v1/embedding"}, 1, `--pass-unmetered "/v1/embedding"`},
		{"unknown pass-unmetered from env", map[string]string{"BOTTLECAP_PASS_UNMETERED": "/v1/embeddings, /v1/batchez"},
			[]string{"--bottle", "dev-1", "--listen", "127.0.0.1:0"}, 1, `--pass-unmetered "/v1/batchez"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, tt.env, append([]string{"meter"}, tt.args...)...)
			wantCode(t, r, tt.code)
			if !strings.Contains(r.stderr, tt.want) {
				t.Errorf("stderr lacks %q:\n%s", tt.want, r.stderr)
			}
		})
	}
}

// TestMeterStartsAndStops: with its context already cancelled the meter
// starts (listener, queue, spool), then shuts down cleanly in order.
func TestMeterStartsAndStops(t *testing.T) {
	spool := t.TempDir() + "/queue.ndjson"
	var out, errOut bytes.Buffer
	m := &Main{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut,
		Getenv: func(k string) string { return map[string]string{"BOT_BOTTLE_HOME": t.TempDir()}[k] }}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	code := m.Run(ctx, []string{"meter", "--bottle", "dev-1", "--listen", "127.0.0.1:0", "--queue", spool,
		"--upstream", "openai:pi=http://127.0.0.1:1", "--gate-cache", "0",
		"--pass-unmetered", "/v1/embeddings", "--pass-unmetered", "/*/models/*:embedContent"})
	if code != 0 || !strings.Contains(errOut.String(), "bottlecap meter ready") ||
		!strings.Contains(errOut.String(), `pass_unmetered=/v1/embeddings,/*/models/*:embedContent`) {
		t.Errorf("exit %d, want 0 after a ready message naming the unmetered calls passed\nstderr: %s", code, errOut.String())
	}
}

// TestMeterFlagsFromProviderTable: every API of the provider table has its
// --upstream-FAMILY flag, defaulting to the table's base URL and naming its
// endpoints ("*:generateContent" for one any path ending in the call
// calls) and default provider.
func TestMeterFlagsFromProviderTable(t *testing.T) {
	r := runCLI(t, nil, "meter", "--help")
	wantCode(t, r, 0)
	for _, api := range budget.ProviderAPIs() {
		first := api.Endpoints[0].Path
		if first == "/" {
			first = "*" + api.Endpoints[0].Suffix // any path that ends in the call
		}
		for _, want := range []string{"--upstream-" + api.Family, "URL for " + api.Name + " (" + first, "provider " + api.Provider, "(" + api.BaseURL + ")"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("meter --help lacks %q for %s:\n%s", want, api.Family, r.stdout)
			}
		}
	}
}

// TestMeterHelpNamesNaiveMode: --allowances is on by default and its help
// says what turning it off gives back (the cached gate, a soft cap).
func TestMeterHelpNamesNaiveMode(t *testing.T) {
	r := runCLI(t, nil, "meter", "--help")
	wantCode(t, r, 0)
	for _, want := range []string{"--allowances", "(true)", "false: ask the cached gate and charge after"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("meter --help lacks %q:\n%s", want, r.stdout)
		}
	}
}
