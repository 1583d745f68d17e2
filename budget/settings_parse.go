package budget

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// MaxSettingsBytes bounds a settings file. Real ones are a few kilobytes;
// a thousand bottles with budgets of their own fit in well under 100 KiB.
// A larger file is refused before it is parsed, so a file written by
// mistake (or by someone who may write it) cannot stall a reload or grow
// the daemon's memory.
const MaxSettingsBytes = 1 << 20

// LoadSettings reads a settings file. A missing file yields the defaults, so
// a fresh host runs without one; a file that cannot be read is an I/O error
// (not a *SettingsError); a file over MaxSettingsBytes is a *SettingsError
// read no further than the limit.
func LoadSettings(path string) (*Settings, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return DefaultSettings(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("read settings: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxSettingsBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read settings: %w", err)
	}
	return ParseSettings(path, data)
}

// ParseSettings parses the content of a settings.yml over DefaultSettings;
// name is the file name errors are reported against. It is strict so a typo
// never silently leaves a budget unenforced: every problem, including an
// unknown key or YAML outside bot-bottle's subset (anchors, aliases, tags,
// block scalars, merge keys, several documents), is a *SettingsError.
// An empty file, or one holding only comments, yields the defaults.
func ParseSettings(name string, data []byte) (*Settings, error) {
	if len(data) > MaxSettingsBytes {
		return nil, &SettingsError{File: name, Msg: fmt.Sprintf(
			"larger than %d bytes (1 MiB), the most a settings file may hold; nothing in it was read", MaxSettingsBytes)}
	}
	p := &settingsParser{file: name, lines: strings.Split(string(data), "\n"), s: DefaultSettings()}
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		return nil, p.syntaxError(err)
	}
	body, err := p.body(f)
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

// settingsParser walks the YAML AST of one file into Settings.
type settingsParser struct {
	file      string
	lines     []string
	s         *Settings
	providers []providerEntry // the file's providers, in file order
}

// providerEntry is one provider of the file's `providers:` with its hosts.
type providerEntry struct {
	name  string
	hosts []string
	nodes []ast.Node // where each host was written
}

// field is one key of a mapping: its name, dotted path and nodes.
type field struct {
	name, path string
	key, value ast.Node
}

// errAt builds a *SettingsError at a line and column.
func (p *settingsParser) errAt(line, col int, key, msg string) *SettingsError {
	e := &SettingsError{File: p.file, Line: line, Column: col, Key: key, Msg: msg}
	if line > 0 && line <= len(p.lines) {
		e.source = strings.TrimRight(p.lines[line-1], "\r")
	}
	return e
}

// fail builds a *SettingsError at node n.
func (p *settingsParser) fail(n ast.Node, key, format string, args ...any) error {
	line, col := 0, 0
	if tk := n.GetToken(); tk != nil && tk.Position != nil {
		line, col = tk.Position.Line, tk.Position.Column
	}
	return p.errAt(line, col, key, fmt.Sprintf(format, args...))
}

// syntaxError turns the YAML parser's error into a positioned SettingsError.
func (p *settingsParser) syntaxError(err error) error {
	var ye interface {
		GetToken() *token.Token
		GetMessage() string
	}
	if errors.As(err, &ye) && ye.GetToken() != nil && ye.GetToken().Position != nil {
		pos := ye.GetToken().Position
		return p.errAt(pos.Line, pos.Column, "", ye.GetMessage())
	}
	return p.errAt(0, 0, "", err.Error())
}

// body is the file's one document body; nil for an empty file.
func (p *settingsParser) body(f *ast.File) (ast.Node, error) {
	var docs []*ast.DocumentNode
	for _, d := range f.Docs {
		if d != nil && d.Body != nil {
			docs = append(docs, d)
		}
	}
	if len(docs) == 0 {
		return nil, nil
	}
	if len(docs) > 1 {
		return nil, p.fail(docs[1].Body, "", "only one YAML document is allowed (remove the second ---)")
	}
	return docs[0].Body, nil
}

// plain rejects the YAML features outside bot-bottle's subset.
func (p *settingsParser) plain(n ast.Node, path string) error {
	const subset = "settings.yml is limited to mappings, plain values and simple lists"
	switch n.Type() {
	case ast.AnchorType:
		return p.fail(n, path, "anchors (&) are not supported; %s", subset)
	case ast.AliasType:
		return p.fail(n, path, "aliases (*) are not supported; %s", subset)
	case ast.LiteralType:
		return p.fail(n, path, "block scalars (| and >) are not supported; write the value on one line")
	case ast.TagType:
		return p.fail(n, path, "tags (!) are not supported; %s", subset)
	case ast.MergeKeyType:
		return p.fail(n, path, "merge keys (<<) are not supported; %s", subset)
	case ast.MappingKeyType:
		return p.fail(n, path, "complex keys (?) are not supported; %s", subset)
	}
	return nil
}

// describe names a node's kind for "want X, got Y" messages.
func describe(n ast.Node) string {
	switch n.Type() {
	case ast.MappingType, ast.MappingValueType:
		return "a mapping"
	case ast.SequenceType:
		return "a list"
	case ast.NullType:
		return "nothing"
	}
	return fmt.Sprintf("%q", n.GetToken().Value)
}

// join extends a dotted key path.
func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// fields calls fn for each key of the mapping n, in file order. A missing
// value (null) is an empty mapping.
func (p *settingsParser) fields(n ast.Node, path string, fn func(field) error) error {
	if n == nil {
		return nil
	}
	if err := p.plain(n, path); err != nil {
		return err
	}
	var values []*ast.MappingValueNode
	switch m := n.(type) {
	case *ast.NullNode:
		return nil
	case *ast.MappingNode:
		values = m.Values
	case *ast.MappingValueNode:
		values = []*ast.MappingValueNode{m}
	default:
		return p.fail(n, path, "want a mapping, got %s", describe(n))
	}
	for _, mv := range values {
		f, err := p.field(mv, path)
		if err != nil {
			return err
		}
		if err := fn(f); err != nil {
			return err
		}
	}
	return nil
}

// field checks a mapping key and pairs it with its value.
func (p *settingsParser) field(mv *ast.MappingValueNode, path string) (field, error) {
	if err := p.plain(mv.Key, path); err != nil {
		return field{}, err
	}
	name := mv.Key.GetToken().Value
	f := field{name: name, path: join(path, name), key: mv.Key, value: mv.Value}
	if !isScalar(mv.Key) || name == "" {
		return f, p.fail(mv.Key, path, "want a plain key, got %s", describe(mv.Key))
	}
	return f, p.plain(mv.Value, f.path)
}

// isScalar reports whether n is a one-line plain value.
func isScalar(n ast.Node) bool {
	switch n.Type() {
	case ast.StringType, ast.IntegerType, ast.FloatType, ast.BoolType, ast.InfinityType, ast.NanType:
		return true
	}
	return false
}

// unknown reports a key that is not one of want.
func (p *settingsParser) unknown(f field, want ...string) error {
	list := strings.Join(want[:len(want)-1], ", ") + " or " + want[len(want)-1]
	return p.fail(f.key, f.path, "unknown key %q (want %s)", f.name, list)
}

// scalar is the text of a one-line value.
func (p *settingsParser) scalar(f field) (string, error) {
	if f.value.Type() == ast.NullType {
		return "", p.fail(f.key, f.path, "missing value")
	}
	if !isScalar(f.value) {
		return "", p.fail(f.value, f.path, "want a single value, got %s", describe(f.value))
	}
	return f.value.GetToken().Value, nil
}

// top handles one top-level key.
func (p *settingsParser) top(f field) error {
	var err error
	switch f.name {
	case "budget":
		p.s.Budget, err = p.limits(f)
	case "shutdown":
		p.s.Shutdown, err = p.policy(f)
	case "precedence":
		p.s.Precedence, err = p.precedence(f)
	case "warn_at":
		p.s.WarnAt, err = p.warnAt(f)
	case "bottles":
		err = p.defaultsByName(f, p.s.Bottles)
	case "agents":
		err = p.defaultsByName(f, p.s.Agents)
	case "providers":
		err = p.fields(f.value, f.path, p.provider)
	case "weights":
		err = p.fields(f.value, f.path, p.weights)
	case "operators":
		p.s.Operators, err = p.operators(f)
	case "socket":
		p.s.Socket, err = p.socket(f)
	default:
		err = p.unknown(f, "budget", "shutdown", "precedence", "warn_at", "bottles",
			"agents", "providers", "weights", "operators", "socket")
	}
	return err
}

// checkName rejects provider, bottle and agent names bottlecap cannot use.
func (p *settingsParser) checkName(f field, what string) error {
	if !slugPattern.MatchString(f.name) {
		return p.fail(f.key, f.path, "%q is not a %s name (want 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit)", f.name, what)
	}
	return nil
}

// limits reads a provider -> token amount mapping.
func (p *settingsParser) limits(f field) (Limits, error) {
	l := Limits{}
	err := p.fields(f.value, f.path, func(e field) error {
		if err := p.checkName(e, "provider"); err != nil {
			return err
		}
		s, err := p.scalar(e)
		if err != nil {
			return err
		}
		n, msg := parseTokens(s)
		if msg != "" {
			return p.fail(e.value, e.path, "%s", msg)
		}
		l[e.name] = n
		return nil
	})
	return l, err
}

// policy reads cutoff, freeze or kill.
func (p *settingsParser) policy(f field) (Policy, error) {
	s, err := p.scalar(f)
	if err != nil {
		return "", err
	}
	pol, err := ParsePolicy(s)
	if err != nil {
		return "", p.fail(f.value, f.path, "%q is not a policy (want cutoff, freeze or kill)", s)
	}
	return pol, nil
}

// precedence reads nearest or strict.
func (p *settingsParser) precedence(f field) (Precedence, error) {
	s, err := p.scalar(f)
	if err != nil {
		return "", err
	}
	prec, err := ParsePrecedence(s)
	if err != nil {
		return "", p.fail(f.value, f.path, "%q is not a precedence (want nearest or strict)", s)
	}
	return prec, nil
}

// warnAt reads a threshold: a percentage such as 80% or 87.5%, or a bare
// fraction above 0 and at most 1 such as 0.8.
func (p *settingsParser) warnAt(f field) (float64, error) {
	s, err := p.scalar(f)
	if err != nil {
		return 0, err
	}
	num, pct := strings.CutSuffix(s, "%")
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, p.fail(f.value, f.path, "%q is not a percentage (want e.g. 80%% or 0.8)", s)
	}
	if pct {
		v /= 100
	}
	if !pct && v > 1 && v <= 100 {
		return 0, p.fail(f.value, f.path, "%q is more than 1; write %s%% for a percentage", s, s)
	}
	if v <= 0 || v > 1 {
		return 0, p.fail(f.value, f.path, "%q is out of range (want above 0%% and at most 100%%)", s)
	}
	return v, nil
}

// defaultsByName reads bottles: or agents:, name -> {budget, shutdown}.
func (p *settingsParser) defaultsByName(f field, into map[string]Defaults) error {
	what := strings.TrimSuffix(f.name, "s")
	return p.fields(f.value, f.path, func(e field) error {
		if err := p.checkName(e, what); err != nil {
			return err
		}
		var d Defaults
		err := p.fields(e.value, e.path, func(k field) error {
			var err error
			switch k.name {
			case "budget":
				d.Budget, err = p.limits(k)
			case "shutdown":
				d.Shutdown, err = p.policy(k)
			default:
				err = p.unknown(k, "budget", "shutdown")
			}
			return err
		})
		into[e.name] = d
		return err
	})
}

// hostPattern accepts host names, IPv4 and bracketed IPv6 addresses, with
// an optional port.
var hostPattern = regexp.MustCompile(`^([a-z0-9]([a-z0-9_.-]*[a-z0-9])?|\[[0-9a-f:.]+\])(:[0-9]{1,5})?$`)

// provider reads one provider's hosts: a list, or one space-separated string.
func (p *settingsParser) provider(f field) error {
	if err := p.checkName(f, "provider"); err != nil {
		return err
	}
	entry := providerEntry{name: f.name, hosts: []string{}}
	var err error
	switch v := f.value.(type) {
	case *ast.NullNode:
	case *ast.SequenceNode:
		for i, n := range v.Values {
			if err = p.host(&entry, n, fmt.Sprintf("%s[%d]", f.path, i), ""); err != nil {
				break
			}
		}
	default:
		if !isScalar(v) {
			return p.fail(v, f.path, "want a list of hosts or a space-separated string, got %s", describe(v))
		}
		for _, h := range strings.Fields(v.GetToken().Value) {
			if err = p.host(&entry, v, f.path, h); err != nil {
				break
			}
		}
	}
	p.providers = append(p.providers, entry)
	return err
}

// host adds one host written at n (its text, unless h is given) to entry.
func (p *settingsParser) host(entry *providerEntry, n ast.Node, path, h string) error {
	if err := p.plain(n, path); err != nil {
		return err
	}
	if !isScalar(n) {
		return p.fail(n, path, "want a host, got %s", describe(n))
	}
	if h == "" {
		h = n.GetToken().Value
	}
	h = strings.ToLower(h)
	if !hostPattern.MatchString(h) {
		return p.fail(n, path, "%q is not a host (want e.g. api.anthropic.com or localhost:11434, without scheme or path)", h)
	}
	entry.hosts = append(entry.hosts, h)
	entry.nodes = append(entry.nodes, n)
	return nil
}

// mergeProviders lays the file's providers over the defaults: a provider the
// file names gets exactly the file's hosts, the others keep theirs. A host
// may belong to one provider only, so attribution is deterministic.
func (p *settingsParser) mergeProviders() error {
	owner := map[string]string{}
	named := map[string]bool{}
	for _, e := range p.providers {
		named[e.name] = true
	}
	for name, hosts := range p.s.Providers {
		if !named[name] {
			for _, h := range hosts {
				owner[h] = name
			}
		}
	}
	for _, e := range p.providers {
		for i, h := range e.hosts {
			if prev, ok := owner[h]; ok {
				return p.fail(e.nodes[i], "providers."+e.name, "host %q already belongs to %s (a host can belong to one provider only)", h, prev)
			}
			owner[h] = e.name
		}
		p.s.Providers[e.name] = e.hosts
	}
	return nil
}

// weights reads one provider's weights; a kind left out weighs 1.
func (p *settingsParser) weights(f field) error {
	if err := p.checkName(f, "provider"); err != nil {
		return err
	}
	w := UnitWeights
	err := p.fields(f.value, f.path, func(k field) error {
		var dst *float64
		switch k.name {
		case "input":
			dst = &w.Input
		case "cache_read":
			dst = &w.CacheRead
		case "cache_write":
			dst = &w.CacheWrite
		case "output":
			dst = &w.Output
		default:
			return p.unknown(k, "input", "cache_read", "cache_write", "output")
		}
		var err error
		*dst, err = p.weight(k)
		return err
	})
	if err != nil {
		return err
	}
	if w == (Weights{}) {
		return p.fail(f.key, f.path, "every weight is 0; to stop counting a provider, give it no budget instead")
	}
	p.s.Weights[f.name] = w
	return nil
}

// weight reads one non-negative finite number.
func (p *settingsParser) weight(f field) (float64, error) {
	s, err := p.scalar(f)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, p.fail(f.value, f.path, "%q is not a weight (want a number such as 1 or 0.1)", s)
	}
	if v < 0 {
		return 0, p.fail(f.value, f.path, "%q is negative (want a weight of 0 or more)", s)
	}
	return v, nil
}

// groupPattern accepts POSIX-style group names (and all-digit uids).
var groupPattern = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*\$?$`)

// operators reads a list of uids and group names, kept as strings.
func (p *settingsParser) operators(f field) ([]string, error) {
	if f.value.Type() == ast.NullType {
		return nil, nil
	}
	seq, ok := f.value.(*ast.SequenceNode)
	if !ok {
		return nil, p.fail(f.value, f.path, "want a list of uids and group names, got %s", describe(f.value))
	}
	var ops []string
	for i, n := range seq.Values {
		item := fmt.Sprintf("%s[%d]", f.path, i)
		if err := p.plain(n, item); err != nil {
			return nil, err
		}
		s := n.GetToken().Value
		switch {
		case n.Type() == ast.IntegerType:
			uid, err := strconv.ParseUint(s, 10, 32)
			if err != nil {
				return nil, p.fail(n, item, "%s is not a uid (want a decimal number from 0 to 4294967295)", s)
			}
			s = strconv.FormatUint(uid, 10)
		case n.Type() != ast.StringType || !groupPattern.MatchString(s):
			return nil, p.fail(n, item, "want a uid or group name, got %s", describe(n))
		}
		ops = append(ops, s)
	}
	return ops, nil
}

// maxSocketPath is the longest path a unix socket address can hold on Linux.
const maxSocketPath = 107

// socket reads an absolute socket path.
func (p *settingsParser) socket(f field) (string, error) {
	s, err := p.scalar(f)
	if err != nil {
		return "", err
	}
	if !filepath.IsAbs(s) {
		return "", p.fail(f.value, f.path, "%q is not an absolute path", s)
	}
	if s = filepath.Clean(s); len(s) > maxSocketPath {
		return "", p.fail(f.value, f.path, "path is %d bytes, too long for a unix socket (at most %d)", len(s), maxSocketPath)
	}
	return s, nil
}

// tokenHint lists the token amount forms in error messages.
const tokenHint = "(want e.g. 5000000, 5_000_000, 5M, 200k, 1.5M)"

// tokenUnits are the decimal (SI) suffixes, case-insensitive: 1k = 1000.
var tokenUnits = map[byte]int{'k': 3, 'K': 3, 'm': 6, 'M': 6, 'g': 9, 'G': 9}
