package bottlecap_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
)

// The layering of ARCHITECTURE.md's package table, held for every package
// of the module from `go list -deps -json ./...`. Each rule names the
// package that breaks it and the import that does.

const module = "github.com/bot-bottle/bottlecap"

// fangPath is Charm's cobra styling, the one Charm package outside tui.
const fangPath = "github.com/charmbracelet/fang"

// testSupport are packages that exist for tests (and the bench harness):
// they may import testing and the Docker client to build what they test.
var testSupport = []string{
	"client/clienttest",
	"daemon/daemontest",
	"enforcement/dockertest",
	"enforcement/internal/testprog",
	"internal/pgtest",
	"internal/testutil",
}

// listed is one package as `go list -json` describes it.
type listed struct {
	ImportPath string
	Standard   bool
	GoFiles    []string
	Imports    []string
	Deps       []string
}

// layout is the module's packages (by path below the module, "" for the
// root) and every package they depend on, by full import path.
type layout struct {
	ours map[string]listed
	all  map[string]listed
}

// listModule runs go list once for all the tests.
var listModule = sync.OnceValues(func() (layout, error) {
	cmd := exec.Command("go", "list", "-deps", "-json", "./...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return layout{}, fmt.Errorf("go list -deps -json ./...: %w\n%s", err, stderr.Bytes())
	}
	l := layout{ours: map[string]listed{}, all: map[string]listed{}}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listed
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return layout{}, fmt.Errorf("decode go list output: %w", err)
		}
		l.all[p.ImportPath] = p
		if rel, ok := ourPath(p.ImportPath); ok && len(p.GoFiles) > 0 {
			l.ours[rel] = p
		}
	}
	return l, nil
})

func loadLayout(t *testing.T) layout {
	t.Helper()
	l, err := listModule()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := l.ours["budget"]; !ok {
		t.Fatalf("go list found none of the module's packages (budget missing): %v", keys(l.ours))
	}
	return l
}

// ourPath is an import path below the module, without the module prefix.
func ourPath(importPath string) (string, bool) {
	if importPath == module {
		return "", true
	}
	return strings.CutPrefix(importPath, module+"/")
}

func keys(m map[string]listed) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// family is a group of imports recognised by path prefix, but for the
// paths (and what lies below them) in except.
type family struct {
	name     string
	prefixes []string
	except   []string
}

func (f family) has(importPath string) bool {
	for _, p := range f.except {
		if importPath == p || strings.HasPrefix(importPath, p+"/") {
			return false
		}
	}
	for _, p := range f.prefixes {
		if importPath == p || strings.HasPrefix(importPath, p+"/") {
			return true
		}
	}
	return false
}

var (
	sqlite = family{"SQLite", []string{"modernc.org/sqlite"}, nil}
	docker = family{"the Docker client", []string{"github.com/moby", "github.com/docker", "github.com/containerd"}, nil}
	// fang is Charm's styling of cobra's help and errors: the command
	// line's, not a Bubble Tea program (TestOnlyTheCommandLineImportsFang).
	tea   = family{"Bubble Tea", []string{"charm.land", "github.com/charmbracelet"}, []string{fangPath}}
	fang  = family{"fang", []string{fangPath}, nil}
	yaml  = family{"YAML", []string{"go.yaml.in/yaml", "gopkg.in/yaml", "github.com/goccy/go-yaml"}, nil}
	tests = family{"testing", []string{"testing"}, nil}
	pg    = family{"Postgres", []string{"github.com/jackc"}, nil}
)

// onlyImportedBy fails for every package of ours outside allowed that
// imports (directly) anything of fam.
func (l layout) onlyImportedBy(t *testing.T, fam family, allowed ...string) {
	t.Helper()
	for rel, p := range l.ours {
		if slices.Contains(allowed, rel) {
			continue
		}
		for _, imp := range p.Imports {
			if fam.has(imp) {
				t.Errorf("%s imports %s (%s); only %s may", p.ImportPath, imp, fam.name, strings.Join(allowed, ", "))
			}
		}
	}
}

func TestBudgetImportsOnlyTheStandardLibrary(t *testing.T) {
	l := loadLayout(t)
	for _, dep := range l.ours["budget"].Deps {
		if !l.all[dep].Standard {
			t.Errorf("budget depends on %s; it may import the standard library only", dep)
		}
	}
}

// TestBudgetDoesNoIO keeps the file system, the network and the process
// out of the domain: settings reads the file, store the ledger.
func TestBudgetDoesNoIO(t *testing.T) {
	io := family{"I/O", []string{"os", "net", "syscall", "io/fs", "io/ioutil", "database/sql", "log"}, nil}
	for _, imp := range loadLayout(t).ours["budget"].Imports {
		if io.has(imp) {
			t.Errorf("budget imports %s (%s); the domain does no I/O", imp, io.name)
		}
	}
}

func TestOnlyStoreImportsSQLite(t *testing.T) {
	loadLayout(t).onlyImportedBy(t, sqlite, "store")
}

// TestOnlyFleetImportsPostgres keeps the fleet's database behind package
// fleet: the test harness and the bench, which start and watch a
// Postgres, are the only others that speak to one.
func TestOnlyFleetImportsPostgres(t *testing.T) {
	loadLayout(t).onlyImportedBy(t, pg, "fleet", "internal/pglab", "internal/pgtest", "cmd/bench")
}

func TestOnlyEnforcementImportsDocker(t *testing.T) {
	allowed := append([]string{
		"enforcement",
		// The benchmark's containers and fake engine (no testing linked
		// in), also used by dockertest.
		"enforcement/dockerlab",
	}, testSupport...)
	loadLayout(t).onlyImportedBy(t, docker, allowed...)
}

// TestDockerStaysBelowTheWiring holds the stronger rule for the packages
// that make up the core and the dashboard: not even through another package
// do they reach the Docker client. Only enforcement, its test support, and
// the packages that wire a daemon (daemon, cmd/...) do.
func TestDockerStaysBelowTheWiring(t *testing.T) {
	l := loadLayout(t)
	for rel, p := range l.ours {
		if rel == "enforcement" || strings.HasPrefix(rel, "enforcement/") || wiring(rel) || slices.Contains(testSupport, rel) {
			continue
		}
		if via := l.carriers(p, docker); len(via) > 0 {
			t.Errorf("%s depends on the Docker client through %s; only enforcement and the wiring may", p.ImportPath, strings.Join(via, ", "))
		}
	}
}

// wiring reports whether rel is a package that wires a daemon or a command
// together (daemon, cmd/...), and so may import any layer.
func wiring(rel string) bool {
	return rel == "daemon" || strings.HasPrefix(rel, "daemon/") || strings.HasPrefix(rel, "cmd/")
}

// ledger is the store package: the ledger's SQLite side, whose records the
// other layers take from budget.
var ledger = family{"the store", []string{module + "/store"}, nil}

// TestOnlyTheWiringImportsStore keeps store behind the interfaces its
// readers declare (controller.Ledger, tui.Reader): only the packages that
// wire a daemon, and test support, name it. Tests of any package may.
func TestOnlyTheWiringImportsStore(t *testing.T) {
	l := loadLayout(t)
	for rel, p := range l.ours {
		// simhost is the demo's and the bench's wiring, imported by
		// commands only (TestOnlyCommandsImportSimhost): it seeds and
		// tails real ledgers.
		if wiring(rel) || rel == "simhost" || slices.Contains(testSupport, rel) {
			continue
		}
		for _, imp := range p.Imports {
			if ledger.has(imp) {
				t.Errorf("%s imports %s; only the wiring (daemon, cmd/...) and test support may: declare the methods it needs as an interface over budget's records", p.ImportPath, imp)
			}
		}
	}
}

// TestCoreAndDashboardLeaveTheLedgerAlone holds the stronger rule for the
// daemon's core and the dashboard: not even through another package do
// they reach the store or link the SQLite driver.
func TestCoreAndDashboardLeaveTheLedgerAlone(t *testing.T) {
	l := loadLayout(t)
	for _, rel := range []string{"controller", "tui"} {
		p := l.ours[rel]
		for _, fam := range []family{ledger, sqlite} {
			if via := l.carriers(p, fam); len(via) > 0 {
				t.Errorf("%s depends on %s through %s; its records are budget's, its ledger an interface of its own", p.ImportPath, fam.name, strings.Join(via, ", "))
			}
		}
	}
}

// carriers are p's direct imports that are in fam or depend on it: where a
// dependency on fam comes in.
func (l layout) carriers(p listed, fam family) []string {
	var via []string
	for _, imp := range p.Imports {
		if fam.has(imp) || slices.ContainsFunc(l.all[imp].Deps, fam.has) {
			via = append(via, imp)
		}
	}
	return via
}

func TestOnlyTUIImportsBubbleTea(t *testing.T) {
	// The bench times a dashboard frame by driving tui's model through its
	// Bubble Tea messages, as the runtime does (cmd/bench/dashframe.go).
	loadLayout(t).onlyImportedBy(t, tea, "tui", "cmd/bench")
}

// TestOnlyTheCommandLineImportsFang: fang styles bottlecap's help and
// errors to match the dashboard; nothing else takes Charm's packages but
// tui (TestOnlyTUIImportsBubbleTea).
func TestOnlyTheCommandLineImportsFang(t *testing.T) {
	loadLayout(t).onlyImportedBy(t, fang, "cmd/bottlecap")
}

// TestOnlyCommandsImportSimhost keeps the simulated host (the demo's and
// the bench's generators) out of the core: only the commands wire it.
func TestOnlyCommandsImportSimhost(t *testing.T) {
	l := loadLayout(t)
	for rel, p := range l.ours {
		if strings.HasPrefix(rel, "cmd/") {
			continue
		}
		if slices.Contains(p.Imports, module+"/simhost") {
			t.Errorf("%s imports %s/simhost; only the commands may", p.ImportPath, module)
		}
	}
}

func TestOnlySettingsImportsYAML(t *testing.T) {
	loadLayout(t).onlyImportedBy(t, yaml, "settings")
}

func TestSettingsImportsOnlyYAMLAndBudget(t *testing.T) {
	l := loadLayout(t)
	for _, imp := range l.ours["settings"].Imports {
		rel, ours := ourPath(imp)
		switch {
		case ours && rel == "budget", !ours && l.all[imp].Standard, yaml.has(imp):
		default:
			t.Errorf("settings imports %s; it may import the standard library, YAML and budget only", imp)
		}
	}
}

func TestOnlyTestSupportImportsTesting(t *testing.T) {
	loadLayout(t).onlyImportedBy(t, tests, testSupport...)
}

// TestProductionCodeLeavesTestSupportAlone keeps test helpers (which import
// testing) out of the binaries.
func TestProductionCodeLeavesTestSupportAlone(t *testing.T) {
	l := loadLayout(t)
	for rel, p := range l.ours {
		if slices.Contains(testSupport, rel) {
			continue
		}
		for _, imp := range p.Imports {
			dep, ours := ourPath(imp)
			if !ours || !slices.Contains(testSupport, dep) {
				continue
			}
			t.Errorf("%s imports the test support package %s", p.ImportPath, imp)
		}
	}
}

// TestTheRulesSeeTheModule guards the rules above against passing because
// go list found nothing: every package the table names is there.
func TestTheRulesSeeTheModule(t *testing.T) {
	l := loadLayout(t)
	for _, rel := range []string{"budget", "settings", "store", "enforcement", "tui", "controller", "daemon", "cmd/bottlecap"} {
		if _, ok := l.ours[rel]; !ok {
			t.Errorf("go list did not report %s/%s", module, rel)
		}
	}
	for _, rel := range testSupport {
		if _, ok := l.ours[rel]; !ok {
			t.Errorf("test support package %s/%s is gone; update testSupport", module, rel)
		}
	}
}
