package bottlecap_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// What the docs tests compare the reference pages with, read from the
// code's syntax trees: the metric names registered, the routes served, the
// settings keys parsed and the event types published. Reading the source
// rather than a running daemon finds every one, including those a daemon
// shows only once it has seen a notification sink, a stopped bottle or a
// reload.

// parsedFile is one non-test Go file of the module.
type parsedFile struct {
	path string
	file *ast.File
}

// goFiles parses the module's non-test Go files under dir ("." for all),
// skipping hidden directories and testdata.
func goFiles(t *testing.T, dir string) []parsedFile {
	t.Helper()
	fset := token.NewFileSet()
	var out []parsedFile
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := e.Name()
		if e.IsDir() {
			if path != dir && (strings.HasPrefix(name, ".") || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		out = append(out, parsedFile{path: filepath.ToSlash(path), file: f})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// stringLit is the value of a Go string literal expression, if it is one.
func stringLit(e ast.Expr) (string, bool) {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(lit.Value)
	return s, err == nil
}

// metricName is a name of ours as Prometheus metrics are named.
var metricName = regexp.MustCompile(`^bottlecap_[a-z0-9_]+$`)

// registeredMetrics are the metric names (with the file naming each) in
// the string literals of the files that use the Prometheus client: the
// Name of a CounterOpts, GaugeOpts or HistogramOpts, and the first
// argument of prometheus.NewDesc.
func registeredMetrics(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, pf := range goFiles(t, ".") {
		if !importsPath(pf.file, "github.com/prometheus/client_golang/prometheus") {
			continue
		}
		ast.Inspect(pf.file, func(n ast.Node) bool {
			if s, ok := n.(*ast.BasicLit); ok {
				if name, ok := stringLit(s); ok && metricName.MatchString(name) {
					out[name] = pf.path
				}
			}
			return true
		})
	}
	return out
}

// importsPath reports whether f imports the package path.
func importsPath(f *ast.File, path string) bool {
	return slices.ContainsFunc(f.Imports, func(s *ast.ImportSpec) bool {
		p, _ := stringLit(s.Path)
		return p == path
	})
}

// servedRoutes are the patterns with a method ("GET /v1/status") given to
// mux.HandleFunc and mux.Handle in controller/routes.go; the catch-all
// "/" (404 for anything else) has none.
func servedRoutes(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, pf := range goFiles(t, "controller") {
		if pf.path != "controller/routes.go" {
			continue
		}
		ast.Inspect(pf.file, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) == 0 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || (sel.Sel.Name != "HandleFunc" && sel.Sel.Name != "Handle") {
				return true
			}
			if p, ok := stringLit(call.Args[0]); ok && strings.Contains(p, " ") {
				out = append(out, p)
			}
			return true
		})
	}
	return out
}

// settingsKeys are the keys the settings parser takes: those of the
// top-level mapping (the list its method top refuses others with) and
// those of every mapping below it, each listed once.
func settingsKeys(t *testing.T) (top, nested []string) {
	t.Helper()
	for _, pf := range goFiles(t, "settings") {
		for _, decl := range pf.file.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			for _, k := range unknownKeyLists(fn.Body) {
				if fn.Name.Name == "top" {
					top = append(top, k)
				} else if !slices.Contains(nested, k) {
					nested = append(nested, k)
				}
			}
		}
	}
	return top, nested
}

// unknownKeyLists are the keys named in the calls to the parser's unknown
// method within body: unknown(field, "want", "these", …).
func unknownKeyLists(body *ast.BlockStmt) []string {
	var out []string
	ast.Inspect(body, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		if sel, ok := call.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "unknown" {
			for _, a := range call.Args[1:] {
				if k, ok := stringLit(a); ok {
					out = append(out, k)
				}
			}
		}
		return true
	})
	return out
}

// publishedEvents are the event types the controller publishes: the first
// argument of every publish call, and the Type of every api.Event it
// writes itself (resync).
func publishedEvents(t *testing.T) []string {
	t.Helper()
	var out []string
	add := func(e ast.Expr) {
		if typ, ok := stringLit(e); ok && !slices.Contains(out, typ) {
			out = append(out, typ)
		}
	}
	for _, pf := range goFiles(t, "controller") {
		ast.Inspect(pf.file, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CallExpr:
				if sel, ok := n.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "publish" && len(n.Args) > 0 {
					add(n.Args[0])
				}
			case *ast.CompositeLit:
				if sel, ok := n.Type.(*ast.SelectorExpr); ok && sel.Sel.Name == "Event" {
					for _, el := range n.Elts {
						if kv, ok := el.(*ast.KeyValueExpr); ok && isIdent(kv.Key, "Type") {
							add(kv.Value)
						}
					}
				}
			}
			return true
		})
	}
	return out
}

func isIdent(e ast.Expr, name string) bool {
	id, ok := e.(*ast.Ident)
	return ok && id.Name == name
}
