package bottlecap_test

import (
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The operator's documentation (README.md, docs/) held to the repository
// and to the code: links resolve inside the repository, and the reference
// pages list exactly the metrics, routes, settings keys and event types the
// code has. Each check names the file and line, or the name, at fault.

// awaited are pages other work adds, which the docs link to already. A
// link to one is accepted while the file does not exist (an anchor into
// it is not); once it exists it is checked like any other. Empty this
// list when they have landed.
var awaited = map[string]string{}

// externalTarget is a link target with a scheme (http:, mailto:, …) or a
// protocol-relative one (//host/…): it leads out of the repository.
var externalTarget = regexp.MustCompile(`^([a-zA-Z][a-zA-Z0-9+.-]*:|//)`)

// TestDocsLinksStayInTheRepository: every link of every Markdown file of
// the module is relative, resolves to a file or directory of the
// repository, and an #anchor to a heading of the Markdown file it names.
func TestDocsLinksStayInTheRepository(t *testing.T) {
	files := markdownFiles(t)
	if !slices.Contains(files, "README.md") || !slices.Contains(files, "docs/README.md") {
		t.Fatalf("found %q; want README.md and docs/README.md among them", files)
	}
	docs := map[string]mdDoc{}
	for _, f := range files {
		docs[f] = readMarkdown(t, f)
	}
	checked := 0
	for _, f := range files {
		for _, l := range docs[f].links {
			checked++
			if msg := checkLink(docs, f, l.target); msg != "" {
				t.Errorf("%s:%d: link %q: %s", f, l.line, l.target, msg)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no links found in any Markdown file")
	}
	for page := range awaited {
		if _, err := os.Stat(page); err == nil {
			t.Logf("%s exists now: remove it from awaited", page)
		}
	}
}

// checkLink says what is wrong with a link from the Markdown file from to
// target, or "" when nothing is.
func checkLink(docs map[string]mdDoc, from, target string) string {
	if target == "" {
		return "empty target"
	}
	if externalTarget.MatchString(target) {
		return "points outside the repository; link a file of the repository instead"
	}
	file, anchor, _ := strings.Cut(target, "#")
	dest := from
	if file != "" {
		p, err := url.PathUnescape(file)
		if err != nil {
			return "not a path: " + err.Error()
		}
		dest = path.Clean(path.Join(path.Dir(from), p))
		if dest == ".." || strings.HasPrefix(dest, "../") || path.IsAbs(p) {
			return "leaves the repository"
		}
		if _, err := os.Stat(filepath.FromSlash(dest)); err != nil {
			if _, ok := awaited[dest]; ok && anchor == "" {
				return ""
			}
			return dest + " does not exist in the repository"
		}
	}
	if anchor == "" {
		return ""
	}
	doc, ok := docs[dest]
	if !ok {
		return "an anchor into " + dest + ", which is not a Markdown file"
	}
	if !doc.anchors[anchor] {
		return fmt.Sprintf("%s has no heading whose anchor is #%s", dest, anchor)
	}
	return ""
}

// TestDocsSlugsAreGitHubs: the anchors the link check expects are the
// ones GitHub gives the headings this documentation uses.
func TestDocsSlugsAreGitHubs(t *testing.T) {
	for _, tt := range []struct{ heading, want string }{
		{"Bounded spending: estimates, allowances, the mid-stream cut", "bounded-spending-estimates-allowances-the-mid-stream-cut"},
		{"A tour: `bottlecap demo`", "a-tour-bottlecap-demo"},
		{"`warn_at:`", "warn_at"},
		{"`fleet:` (being added)", "fleet-being-added"},
		{"GET /v1/budgets/{scope}/{id...}", "get-v1budgetsscopeid"},
		{"DELETE /v1/allowances/{id}", "delete-v1allowancesid"},
		{"Limits on requests, connections and time", "limits-on-requests-connections-and-time"},
		{"See [the API](docs/api.md) — here", "see-the-api--here"},
	} {
		if got := githubSlug(tt.heading); got != tt.want {
			t.Errorf("githubSlug(%q) = %q, want %q", tt.heading, got, tt.want)
		}
	}
}

// metricRow is a row of docs/metrics.md's tables that lists a metric.
var metricRow = regexp.MustCompile("^\\| `(bottlecap_[a-z0-9_]+)` \\|")

// metricMention is a metric name written anywhere in the docs (a file
// such as bottlecap_addon.py is not one).
var metricMention = regexp.MustCompile(`\bbottlecap_[a-z0-9_]+\b(\.[a-z]+)?`)

// TestDocsMetricsAreTheRegisteredOnes: docs/metrics.md lists every metric
// the code registers and none it does not, and no page names a metric the
// code does not register.
func TestDocsMetricsAreTheRegisteredOnes(t *testing.T) {
	registered := registeredMetrics(t)
	if len(registered) < 10 {
		t.Fatalf("found only %d metric names in the code: %v", len(registered), registered)
	}
	listed := map[string]bool{}
	for _, line := range readMarkdown(t, "docs/metrics.md").lines {
		if m := metricRow.FindStringSubmatch(line); m != nil {
			listed[m[1]] = true
		}
	}
	for name := range registered {
		if !listed[name] {
			t.Errorf("%s is registered (%s) but docs/metrics.md has no row for it", name, registered[name])
		}
	}
	for name := range listed {
		if _, ok := registered[name]; !ok {
			t.Errorf("docs/metrics.md lists %s, which the code does not register", name)
		}
	}
	for _, f := range markdownFiles(t) {
		raw, err := os.ReadFile(filepath.FromSlash(f))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range metricMention.FindAllStringSubmatch(string(raw), -1) {
			if m[1] == "" && !isMetricOrSeries(registered, m[0]) {
				t.Errorf("%s names %s, which the code does not register", f, m[0])
			}
		}
	}
}

// isMetricOrSeries reports whether name is a registered metric or one of
// a histogram's series.
func isMetricOrSeries(registered map[string]string, name string) bool {
	for _, suffix := range []string{"", "_bucket", "_sum", "_count"} {
		if _, ok := registered[strings.TrimSuffix(name, suffix)]; ok && strings.HasSuffix(name, suffix) {
			return true
		}
	}
	return false
}

// routeHeading is a heading of docs/api.md that documents a route.
var routeHeading = regexp.MustCompile(`^(GET|POST|PUT|DELETE|PATCH|HEAD) (/\S*)$`)

// TestDocsAPIHasEveryRoute: docs/api.md has a section for every route of
// controller/routes.go, and none for a route the daemon does not serve.
func TestDocsAPIHasEveryRoute(t *testing.T) {
	routes := servedRoutes(t)
	if len(routes) < 10 {
		t.Fatalf("found only %d routes in controller/routes.go: %q", len(routes), routes)
	}
	documented := map[string]bool{}
	for _, m := range headingsMatching(readMarkdown(t, "docs/api.md"), routeHeading) {
		documented[m[0]] = true
	}
	sameBothWays(t, routes, documented,
		"controller/routes.go serves %[1]q; docs/api.md has no heading %[1]q",
		"docs/api.md documents %q, which controller/routes.go does not serve")
}

// sameBothWays fails for each name the code has that the document does
// not (undocumented, with the name), and each the document has that the
// code does not (unknown): a doc that lags the code and one that promises
// what is gone are both wrong.
func sameBothWays(t *testing.T, have []string, documented map[string]bool, undocumented, unknown string) {
	t.Helper()
	for _, n := range have {
		if !documented[n] {
			t.Errorf(undocumented, n)
		}
	}
	for n := range documented {
		if !slices.Contains(have, n) {
			t.Errorf(unknown, n)
		}
	}
}

// keyHeading is a heading of docs/settings.md that documents a top-level
// key: "`budget:`", or "`fleet:` (being added)" for one the parser does not
// take yet.
var keyHeading = regexp.MustCompile("^`([a-z_]+):`( \\(being added\\))?$")

// TestDocsSettingsHaveEveryKey: docs/settings.md has a section for every
// top-level key the settings parser takes, none for a key it refuses
// unless marked as being added, and names every nested key it takes.
func TestDocsSettingsHaveEveryKey(t *testing.T) {
	top, nested := settingsKeys(t)
	if len(top) < 10 {
		t.Fatalf("found only %d top-level keys in settings/: %q", len(top), top)
	}
	doc := readMarkdown(t, "docs/settings.md")
	documented := map[string]bool{}
	for _, m := range headingsMatching(doc, keyHeading) {
		documented[m[1]] = true
		if m[2] == "" && !slices.Contains(top, m[1]) {
			t.Errorf("docs/settings.md documents %s:, which the settings parser refuses (mark it \"(being added)\" if it is coming)", m[1])
		}
	}
	for _, k := range top {
		if !documented[k] {
			t.Errorf("the settings parser takes %s:; docs/settings.md has no heading `%s:`", k, k)
		}
	}
	text := strings.Join(doc.lines, "\n")
	for _, k := range nested {
		if !strings.Contains(text, "`"+k+"`") && !strings.Contains(text, "`"+k+":`") {
			t.Errorf("the settings parser takes the key %s under some key; docs/settings.md never names `%s`", k, k)
		}
	}
}

// eventHeading is a heading of docs/events.md that documents an event type.
var eventHeading = regexp.MustCompile("^`([a-z_]+)`$")

// TestDocsEventsHaveEveryType: docs/events.md has a section for every
// event type the daemon publishes on /v1/events, and none it does not.
func TestDocsEventsHaveEveryType(t *testing.T) {
	types := publishedEvents(t)
	if len(types) < 5 {
		t.Fatalf("found only %d event types in controller/: %q", len(types), types)
	}
	documented := map[string]bool{}
	for _, m := range headingsMatching(readMarkdown(t, "docs/events.md"), eventHeading) {
		documented[m[1]] = true
	}
	sameBothWays(t, types, documented,
		"the daemon publishes %[1]q events; docs/events.md has no heading `%[1]s`",
		"docs/events.md documents %q events, which the daemon does not publish")
}

// TestReadmeOpensWithRunTestInstall holds the README's opening to what a
// newcomer types first: make run and make test, then the install lines.
func TestReadmeOpensWithRunTestInstall(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	var commands []string
	inBlock := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "```") {
			inBlock = !inBlock
			continue
		}
		if f := strings.Fields(line); inBlock && len(f) > 0 {
			commands = append(commands, strings.Join(f[:min(2, len(f))], " "))
		}
		if len(commands) == 4 {
			break
		}
	}
	want := []string{"make run", "make test", "go install", "sudo make"}
	if !slices.Equal(commands, want) {
		t.Errorf("the README's first commands are %q, want %q", commands, want)
	}
}
