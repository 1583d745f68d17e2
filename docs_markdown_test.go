package bottlecap_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// The operator's documentation as the docs tests read it: Markdown files
// with their headings (as GitHub's anchors) and their links, code blocks
// and code spans left out, since neither makes a link or a heading.

// mdLink is one link of a Markdown file: its target as written and the
// line it is on.
type mdLink struct {
	target string
	line   int
}

// mdDoc is one Markdown file.
type mdDoc struct {
	path     string   // relative to the module root, slash-separated
	lines    []string // the file's lines, code blocks blanked
	headings []string // heading texts, in order
	anchors  map[string]bool
	links    []mdLink
}

var (
	atxHeading = regexp.MustCompile(`^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$`)
	// inlineLink is [text](target) or ![alt](target), with an optional
	// title; the target is what the link points at.
	inlineLink = regexp.MustCompile(`!?\[[^\]]*\]\(\s*<?([^)\s>]*)>?(?:\s+"[^"]*")?\s*\)`)
	// refDefinition is a reference-style link's definition: [name]: target.
	refDefinition = regexp.MustCompile(`^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s.*)?$`)
	// autolink is <scheme:…>.
	autolink   = regexp.MustCompile(`<([a-zA-Z][a-zA-Z0-9+.-]*:[^>\s]*)>`)
	codeSpan   = regexp.MustCompile("`+[^`]*`+")
	fenceStart = regexp.MustCompile("^ {0,3}(```+|~~~+)")
)

// readMarkdown reads one Markdown file of the module.
func readMarkdown(t *testing.T, path string) mdDoc {
	t.Helper()
	raw, err := os.ReadFile(filepath.FromSlash(path))
	if err != nil {
		t.Fatal(err)
	}
	doc := mdDoc{path: path, anchors: map[string]bool{}}
	fence := ""
	for i, line := range strings.Split(string(raw), "\n") {
		if m := fenceStart.FindStringSubmatch(line); m != nil && (fence == "" || strings.HasPrefix(m[1], fence[:1]) && len(m[1]) >= len(fence)) {
			if fence == "" {
				fence = m[1]
			} else {
				fence = ""
			}
			doc.lines = append(doc.lines, "")
			continue
		}
		if fence != "" {
			doc.lines = append(doc.lines, "")
			continue
		}
		doc.lines = append(doc.lines, line)
		doc.scanLine(line, i+1)
	}
	seen := map[string]int{}
	for _, h := range doc.headings {
		slug := githubSlug(h)
		if n := seen[slug]; n > 0 {
			doc.anchors[slug+"-"+strconv.Itoa(n)] = true
		} else {
			doc.anchors[slug] = true
		}
		seen[slug]++
	}
	return doc
}

// scanLine collects a line's heading and links.
func (d *mdDoc) scanLine(line string, n int) {
	if m := atxHeading.FindStringSubmatch(line); m != nil {
		d.headings = append(d.headings, m[2])
	}
	text := codeSpan.ReplaceAllString(line, "")
	for _, m := range inlineLink.FindAllStringSubmatch(text, -1) {
		d.links = append(d.links, mdLink{target: m[1], line: n})
	}
	for _, m := range autolink.FindAllStringSubmatch(text, -1) {
		d.links = append(d.links, mdLink{target: m[1], line: n})
	}
	if m := refDefinition.FindStringSubmatch(text); m != nil {
		d.links = append(d.links, mdLink{target: m[1], line: n})
	}
}

// githubSlug is the anchor GitHub gives a heading: its text without
// Markdown (code spans keep their content, links their text), lowercased,
// everything but letters, digits, spaces, '-' and '_' dropped, spaces made
// '-'. A repeated slug gets -1, -2, … (readMarkdown adds those).
func githubSlug(heading string) string {
	text := inlineLink.ReplaceAllStringFunc(heading, func(m string) string {
		return m[strings.Index(m, "[")+1 : strings.Index(m, "]")]
	})
	var b strings.Builder
	for _, r := range strings.ToLower(text) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// markdownFiles are the module's Markdown files, relative and
// slash-separated: everything but hidden directories (.git, .bin),
// testdata and build output.
func markdownFiles(t *testing.T) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(".", func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := e.Name()
		if e.IsDir() && path != "." && (strings.HasPrefix(name, ".") || name == "testdata" || name == "dist" || name == "node_modules") {
			return filepath.SkipDir
		}
		if !e.IsDir() && strings.HasSuffix(name, ".md") {
			out = append(out, filepath.ToSlash(path))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// headingsMatching are the submatches of re in a document's headings.
func headingsMatching(d mdDoc, re *regexp.Regexp) [][]string {
	var out [][]string
	for _, h := range d.headings {
		if m := re.FindStringSubmatch(h); m != nil {
			out = append(out, m)
		}
	}
	return out
}
