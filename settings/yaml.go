package settings

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/bot-bottle/bottlecap/budget"
	goccyparser "github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
	"go.yaml.in/yaml/v3"
)

// Parse parses the content of a settings.yml over budget.DefaultSettings;
// name is the file name errors are reported against. It is strict so a typo
// never silently leaves a budget unenforced: every problem, including an
// unknown or repeated key or YAML outside bot-bottle's subset (anchors,
// aliases, tags, block scalars, merge keys, several documents), is a
// *Error. An empty file, or one holding only comments, yields the
// defaults.
//
// The file is read with go.yaml.in/yaml/v3, whose parse grows linearly
// with the file. (goccy/go-yaml, which bottlecap used first, parses a
// block mapping in time quadratic in its number of keys: 40,000 bottles
// took 15 s.) goccy still words the syntax errors of small files, because
// it gives their column where yaml.v3 gives only the line.
func Parse(name string, data []byte) (*budget.Settings, error) {
	if len(data) > MaxBytes {
		return nil, &Error{File: name, Msg: fmt.Sprintf(
			"larger than %d bytes (1 MiB), the most a settings file may hold; nothing in it was read", MaxBytes)}
	}
	p := &settingsParser{file: name, lines: strings.Split(string(data), "\n"), s: budget.DefaultSettings()}
	body, err := p.body(data)
	if err != nil {
		return nil, err
	}
	if err := p.fields(body, "", p.top); err != nil {
		return nil, err
	}
	if err := p.mergeProviders(); err != nil {
		return nil, err
	}
	return p.s, nil
}

// settingsParser walks the YAML nodes of one file into Settings.
type settingsParser struct {
	file      string
	lines     []string
	s         *budget.Settings
	providers []providerEntry // the file's providers, in file order
}

// providerEntry is one provider of the file's `providers:` with its hosts.
type providerEntry struct {
	name  string
	hosts []string
	nodes []*yaml.Node // where each host was written
}

// field is one key of a mapping: its name, dotted path and nodes.
type field struct {
	name, path string
	key, value *yaml.Node
}

// errAt builds a *Error at a line and column.
func (p *settingsParser) errAt(line, col int, key, msg string) *Error {
	e := &Error{File: p.file, Line: line, Column: col, Key: key, Msg: msg}
	if line > 0 && line <= len(p.lines) {
		e.source = strings.TrimRight(p.lines[line-1], "\r")
	}
	return e
}

// fail builds a *Error at node n.
func (p *settingsParser) fail(n *yaml.Node, key, format string, args ...any) error {
	return p.errAt(n.Line, n.Column, key, fmt.Sprintf(format, args...))
}

// body is the file's one document body; nil for an empty file.
func (p *settingsParser) body(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
		return nil, nil
	} else if err != nil {
		return nil, p.syntaxError(data, err)
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, p.syntaxError(data, err)
	case len(next.Content) > 0 && next.Content[0].Tag != "!!null":
		return nil, p.fail(next.Content[0], "", "only one YAML document is allowed (remove the second ---)")
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	return doc.Content[0], nil
}

// maxSyntaxRetry bounds the files whose syntax errors goccy words again:
// its parse is quadratic, so a large broken file keeps yaml.v3's message.
const maxSyntaxRetry = 64 << 10

// syntaxError turns a YAML syntax error into a Error: goccy's,
// with line and column, when the file is small and goccy finds one too;
// else yaml.v3's, whose message names the line.
func (p *settingsParser) syntaxError(data []byte, err error) error {
	if len(data) <= maxSyntaxRetry {
		if _, gerr := goccyparser.ParseBytes(data, 0); gerr != nil {
			var ye interface {
				GetToken() *token.Token
				GetMessage() string
			}
			if errors.As(gerr, &ye) && ye.GetToken() != nil && ye.GetToken().Position != nil {
				pos := ye.GetToken().Position
				return p.errAt(pos.Line, pos.Column, "", ye.GetMessage())
			}
		}
	}
	return p.errAt(0, 0, "", strings.TrimPrefix(err.Error(), "yaml: "))
}

// plain rejects the YAML features outside bot-bottle's subset.
func (p *settingsParser) plain(n *yaml.Node, path string) error {
	const subset = "settings.yml is limited to mappings, plain values and simple lists"
	switch {
	case n.Anchor != "":
		return p.fail(n, path, "anchors (&) are not supported; %s", subset)
	case n.Kind == yaml.AliasNode:
		return p.fail(n, path, "aliases (*) are not supported; %s", subset)
	case n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0:
		return p.fail(n, path, "block scalars (| and >) are not supported; write the value on one line")
	case n.Style&yaml.TaggedStyle != 0:
		return p.fail(n, path, "tags (!) are not supported; %s", subset)
	}
	return nil
}

// plainKey also rejects what only a key can be: a merge key, or a complex
// key (one that is not a scalar, or one written after '?').
func (p *settingsParser) plainKey(k *yaml.Node, path string) error {
	const subset = "settings.yml is limited to mappings, plain values and simple lists"
	switch {
	case k.Kind == yaml.ScalarNode && k.Tag == "!!merge":
		return p.fail(k, path, "merge keys (<<) are not supported; %s", subset)
	case k.Kind == yaml.ScalarNode && p.explicitKey(k):
		return p.errAt(k.Line, k.Column-2, path, "complex keys (?) are not supported; "+subset)
	}
	return p.plain(k, path)
}

// explicitKey reports whether the key k was written after a '?' indicator,
// which yaml.v3 does not keep in its nodes.
func (p *settingsParser) explicitKey(k *yaml.Node) bool {
	if k.Line < 1 || k.Line > len(p.lines) {
		return false
	}
	before := []rune(p.lines[k.Line-1])
	if k.Column-1 > len(before) {
		return false
	}
	return strings.HasSuffix(strings.TrimRight(string(before[:k.Column-1]), " \t"), "?")
}

// describe names a node's kind for "want X, got Y" messages.
func describe(n *yaml.Node) string {
	switch {
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case isNull(n):
		return "nothing"
	}
	return fmt.Sprintf("%q", n.Value)
}

// isNull reports whether n is a missing value (empty, null or ~).
func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

// join extends a dotted key path.
func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// fields calls fn for each key of the mapping n, in file order. A missing
// value (null) is an empty mapping. A key given twice is an error at its
// second place, as a YAML mapping's keys are unique.
func (p *settingsParser) fields(n *yaml.Node, path string, fn func(field) error) error {
	if n == nil {
		return nil
	}
	if err := p.plain(n, path); err != nil || isNull(n) {
		return err
	}
	if n.Kind != yaml.MappingNode {
		return p.fail(n, path, "want a mapping, got %s", describe(n))
	}
	seen := make(map[string]*yaml.Node, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		f, err := p.field(n.Content[i], n.Content[i+1], path)
		if err != nil {
			return err
		}
		if prev, ok := seen[f.name]; ok {
			return p.errAt(f.key.Line, f.key.Column, "", fmt.Sprintf("mapping key %q already defined at [%d:%d]", f.name, prev.Line, prev.Column))
		}
		seen[f.name] = f.key
		if err := fn(f); err != nil {
			return err
		}
	}
	return nil
}

// field checks a mapping key and pairs it with its value.
func (p *settingsParser) field(key, value *yaml.Node, path string) (field, error) {
	if err := p.plainKey(key, path); err != nil {
		return field{}, err
	}
	name := key.Value
	f := field{name: name, path: join(path, name), key: key, value: value}
	if !isScalar(key) || name == "" {
		return f, p.fail(key, path, "want a plain key, got %s", describe(key))
	}
	return f, p.plain(value, f.path)
}

// isScalar reports whether n is a one-line value that is not null.
func isScalar(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && !isNull(n) && n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) == 0
}

// unknown reports a key that is not one of want.
func (p *settingsParser) unknown(f field, want ...string) error {
	list := strings.Join(want[:len(want)-1], ", ") + " or " + want[len(want)-1]
	return p.fail(f.key, f.path, "unknown key %q (want %s)", f.name, list)
}

// scalar is the text of a one-line value.
func (p *settingsParser) scalar(f field) (string, error) {
	if isNull(f.value) {
		return "", p.fail(f.key, f.path, "missing value")
	}
	if !isScalar(f.value) {
		return "", p.fail(f.value, f.path, "want a single value, got %s", describe(f.value))
	}
	return f.value.Value, nil
}
