package deploy_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/daemon/daemontest"
	"go.yaml.in/yaml/v3"
)

// metricName finds the names of our metrics (and the Go and process
// collectors') in a PromQL expression; Prometheus's own `up` is not one.
var metricName = regexp.MustCompile(`\b(?:bottlecap|go|process)_[a-zA-Z0-9_]+\b`)

// TestGrafanaDashboard: the dashboard is JSON Grafana takes (panels with
// queries on the dashboard's data source variable), and every metric it
// queries exists at a real daemon's /metrics.
func TestGrafanaDashboard(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(root, "deploy", "grafana", "bottlecap.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title, UID string
		Panels     []struct {
			Type, Title string
			Datasource  struct{ UID string }
			Targets     []struct{ Expr string }
		}
		Templating struct {
			List []struct{ Name, Type, Definition string }
		}
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("bottlecap.json: %v", err)
	}
	if dash.Title == "" || dash.UID == "" || len(dash.Panels) == 0 {
		t.Fatalf("bottlecap.json has no title, uid or panels: %+v", dash)
	}
	var exprs []string
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: %d queries on data source %q, want queries on ${datasource}", p.Title, len(p.Targets), p.Datasource.UID)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	for _, v := range dash.Templating.List {
		exprs = append(exprs, v.Definition)
	}
	checkNamesExported(t, "bottlecap.json", exprs)
}

// alertRules is a Prometheus rule file.
type alertRules struct {
	Groups []struct {
		Name  string
		Rules []struct {
			Alert, Expr, For string
			Labels           map[string]string
			Annotations      map[string]string
		}
	}
}

// TestPrometheusAlerts: the rule file is a Prometheus rule file whose
// alerts each say how bad and what happened, and every metric their
// expressions name exists at a real daemon's /metrics.
func TestPrometheusAlerts(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(root, "deploy", "prometheus", "bottlecap-alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var rules alertRules
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	dec.KnownFields(true)
	if err := dec.Decode(&rules); err != nil {
		t.Fatalf("bottlecap-alerts.yml: %v", err)
	}
	var exprs, alerts []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
			exprs = append(exprs, r.Expr)
			if r.Alert == "" || r.Expr == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("rule %+v: want an alert name, an expression, a summary and a description", r)
			}
			if s := r.Labels["severity"]; s != "warning" && s != "critical" {
				t.Errorf("alert %s: severity %q, want warning or critical", r.Alert, s)
			}
			if _, err := time.ParseDuration(r.For); r.For != "" && err != nil {
				t.Errorf("alert %s: for %q: %v", r.Alert, r.For, err)
			}
		}
	}
	for _, want := range []string{"BottlecapDown", "BottlecapBudgetNearlyExhausted", "BottlecapBottleStopped", "BottlecapNotificationsFailing", "BottlecapIngestSlow"} {
		if !slices.Contains(alerts, want) {
			t.Errorf("no alert %s among %q", want, alerts)
		}
	}
	checkNamesExported(t, "bottlecap-alerts.yml", exprs)
}

// checkNamesExported fails for each metric the expressions name that a
// real daemon does not export.
func checkNamesExported(t *testing.T, file string, exprs []string) {
	t.Helper()
	exported := exportedSeries(t)
	seen := 0
	for _, e := range exprs {
		for _, name := range metricName.FindAllString(e, -1) {
			seen++
			if !exported[name] {
				t.Errorf("%s names %s, which the daemon does not export (in %q)", file, name, e)
			}
		}
	}
	if seen == 0 {
		t.Errorf("%s names no metric at all", file)
	}
}

// exportedSeries are the series names (histograms' _bucket, _sum and
// _count included) at the /metrics of a daemon that has seen what makes
// every series exist: a notification sink, budgets at every scope, a
// report with a model, a verdict and a bottle stopped.
func exportedSeries(t *testing.T) map[string]bool {
	t.Helper()
	hook := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(hook.Close)
	s := budget.DefaultSettings()
	s.Budget = budget.Limits{"claude": budget.Lifetime(1_000_000)}
	s.Notify = []budget.NotifySink{{Name: "ops", Webhook: hook.URL}}
	d := daemontest.Start(t, daemontest.Options{Settings: s})
	ctx := context.Background()
	if _, err := d.Client.PutBottle(ctx, "dev", api.BottleRequest{Agent: "coder", Budget: budget.Limits{"claude": budget.Lifetime(1000)}}); err != nil {
		t.Fatal(err)
	}
	rep := api.Report{Report: budget.Report{ID: "r1", Bottle: "dev", Provider: "claude", Model: "claude-sonnet-4-5",
		Usage: budget.Usage{Input: 100, CacheRead: 10, CacheWrite: 10, Output: 50}}}
	if _, err := d.Client.Ingest(ctx, []api.Report{rep}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Client.Act(ctx, "dev", api.ActionRequest{Action: "pause"}); err != nil {
		t.Fatal(err)
	}
	body, err := d.Client.Metrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for line := range strings.SplitSeq(body, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out[strings.FieldsFunc(line, func(r rune) bool { return r == '{' || r == ' ' })[0]] = true
	}
	return out
}
