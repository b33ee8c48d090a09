package deptest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
)

// rules is Ferry's layering, read top to bottom as "packages matching from
// (but not notFrom) may not depend on packages matching forbid (but not
// allow)". Dependencies count whether direct or through other packages, so a
// forbidden import cannot hide behind a helper in internal/. Only the imports
// of non-test files count: tests may reach across layers to set things up.
//
// Patterns are import paths, relative to the module unless their first
// element has a dot (github.com/...); standard library packages cannot be
// named. In a pattern:
//
//	...     as the last element matches the path and everything below it
//	        ("..." alone is the whole module)
//	*       matches any one element
//	{name}  in from, matches one element and names it; in forbid and allow,
//	        stands for the element that from matched
//
// A rule about packages that do not exist yet constrains nothing until they
// appear, so write the layering down before the code.
var rules = []rule{
	{
		from:   []string{"storage/..."},
		forbid: []string{"engine/...", "protocol/...", "server/...", "client/...", "metrics/...", "web/...", "cmd/..."},
		why:    "storage is the bottom layer: it knows nothing of what is built on it",
	},
	{
		from:   []string{"storage/record/..."},
		forbid: []string{"..."},
		allow:  []string{"storage/record/..."},
		why:    "the record format is a leaf that anyone, a fuzzer or a recovery tool, can take alone",
	},
	{
		from:   []string{"engine/..."},
		forbid: []string{"protocol/...", "server/...", "metrics/...", "web/...", "client/...", "cmd/..."},
		why:    "the engine is embeddable: it knows no front door, server, metrics or dashboard",
	},
	{
		from:   []string{"protocol/{door}/..."},
		forbid: []string{"protocol/*/..."},
		allow:  []string{"protocol/{door}/..."},
		why:    "front doors meet only in the engine, never in each other",
	},
	{
		from:   []string{"client/..."},
		forbid: []string{"engine/...", "storage/...", "protocol/...", "server/...", "metrics/...", "web/...", "cmd/..."},
		allow:  []string{"storage/record/..."},
		why: "the Go client is what users import: it speaks the native API (api/) and links no broker, " +
			"only the record format, to decode the record batches consumers receive",
	},
	{
		from:   []string{"api/..."},
		forbid: []string{"..."},
		allow:  []string{"api/..."},
		why:    "the API's generated code stands alone, for any client to take",
	},
	{
		from:    []string{"..."},
		notFrom: []string{"metrics/...", "server/...", "cmd/...", "tests/..."},
		forbid:  []string{"github.com/prometheus/..."},
		why: "metrics alone adapts engine hooks to Prometheus; server and cmd wire it " +
			"in, and black-box tests link the server",
	},
}

func TestRulesAreWellFormed(t *testing.T) {
	for i, r := range rules {
		if err := r.validate(); err != nil {
			t.Errorf("rules[%d] (%s): %v", i, r.why, err)
		}
	}
}

// TestLayering checks the real module against rules.
func TestLayering(t *testing.T) {
	mod := mainModule(t)
	graph := importGraph(t, mod.Dir)

	var own int
	for pkg := range graph {
		if pkg == mod.Path || strings.HasPrefix(pkg, mod.Path+"/") {
			own++
		}
	}
	if own == 0 {
		t.Fatalf("go list found no packages of %s in %s: the check would prove nothing", mod.Path, mod.Dir)
	}
	t.Logf("checked %d packages of %s (%d packages in all) against %d rules", own, mod.Path, len(graph), len(rules))

	for _, v := range check(mod.Path, graph, rules) {
		t.Error(v)
	}
}

type moduleInfo struct {
	Path string // import path of the module, e.g. github.com/ferrymq/ferry
	Dir  string // where its go.mod is
}

// mainModule finds the module under test. The test runs in its package's
// folder, so `go list ./...` there would see only this package.
func mainModule(t *testing.T) moduleInfo {
	t.Helper()
	out := goCmd(t, "", "list", "-m", "-json")
	var m moduleInfo
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("go list -m -json: %v", err)
	}
	return m
}

// importGraph maps every package the module's packages depend on, theirs
// included, to the packages it imports directly.
func importGraph(t *testing.T, dir string) map[string][]string {
	t.Helper()
	// -e: a package that does not load (an import of a package not written
	// yet, say) is still listed with its imports, so its layering is checked;
	// building it fails elsewhere.
	out := goCmd(t, dir, "list", "-e", "-deps", "-json=ImportPath,Imports,Error", "./...")
	graph := make(map[string][]string)
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p struct {
			ImportPath string
			Imports    []string
			Error      *struct{ Err string }
		}
		err := dec.Decode(&p)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("decoding go list output: %v", err)
		}
		if p.Error != nil {
			t.Logf("go list: %s: %s", p.ImportPath, p.Error.Err)
		}
		graph[p.ImportPath] = p.Imports
	}
	return graph
}

// goCmd runs the go command in dir and returns its standard output. `go test`
// puts its own go first on PATH, so this is the toolchain running the test.
func goCmd(t *testing.T, dir string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return out
}
