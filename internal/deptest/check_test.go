package deptest

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
)

// A rule forbids some packages to depend on others; see rules for the
// pattern syntax.
type rule struct {
	from, notFrom []string // the packages the rule constrains
	forbid, allow []string // what they may not depend on
	why           string   // said with every violation, so the reader knows what to change
}

// validate reports patterns that could never mean what their author wanted.
func (r rule) validate() error {
	if r.why == "" {
		return fmt.Errorf("no why: a violation would not say what the rule protects")
	}
	if len(r.from) == 0 || len(r.forbid) == 0 {
		return fmt.Errorf("from and forbid must both be set")
	}
	for _, list := range [][]string{r.from, r.notFrom, r.forbid, r.allow} {
		for _, p := range list {
			for i, e := range strings.Split(p, "/") {
				if e == "" || (strings.Contains(e, "...") && (e != "..." || i != strings.Count(p, "/"))) {
					return fmt.Errorf("pattern %q: empty element, or ... not alone at the end", p)
				}
			}
		}
	}
	// Each from pattern must name every variable that forbid and allow use.
	for _, p := range slices.Concat(r.forbid, r.allow, r.notFrom) {
		for _, v := range vars(p) {
			for _, f := range r.from {
				if !slices.Contains(vars(f), v) {
					return fmt.Errorf("pattern %q uses {%s}, which from pattern %q does not name", p, v, f)
				}
			}
		}
	}
	return nil
}

// vars lists the {name} elements of a pattern.
func vars(pattern string) []string {
	var names []string
	for e := range strings.SplitSeq(pattern, "/") {
		if isVar(e) {
			names = append(names, e[1:len(e)-1])
		}
	}
	return names
}

func isVar(elem string) bool {
	return len(elem) > 2 && elem[0] == '{' && elem[len(elem)-1] == '}'
}

// resolve turns a rule's pattern into one over full import paths.
func resolve(module, pattern string) string {
	if pattern == "..." {
		return module + "/..."
	}
	first, _, _ := strings.Cut(pattern, "/")
	if strings.Contains(first, ".") {
		return pattern
	}
	return module + "/" + pattern
}

// match reports whether path matches the resolved pattern. Variables already
// in bound must match their value; others are bound in a copy of bound,
// which match returns.
func match(pattern, path string, bound map[string]string) (map[string]string, bool) {
	pe, xe := strings.Split(pattern, "/"), strings.Split(path, "/")
	out := bound
	for i, p := range pe {
		if p == "..." && i == len(pe)-1 {
			return out, true
		}
		if i >= len(xe) {
			return nil, false
		}
		switch {
		case p == "*":
		case isVar(p):
			name := p[1 : len(p)-1]
			if v, ok := out[name]; ok {
				if v != xe[i] {
					return nil, false
				}
				continue
			}
			out = maps.Clone(out)
			if out == nil {
				out = make(map[string]string)
			}
			out[name] = xe[i]
		case p != xe[i]:
			return nil, false
		}
	}
	return out, len(pe) == len(xe)
}

// matchAny is match over several patterns; the first that matches wins.
func matchAny(module string, patterns []string, path string, bound map[string]string) (map[string]string, bool) {
	for _, p := range patterns {
		if b, ok := match(resolve(module, p), path, bound); ok {
			return b, true
		}
	}
	return nil, false
}

// A violation is one package depending on one it may not.
type violation struct {
	module string
	chain  []string // the package, the packages in between, the forbidden one
	why    string
}

func (v violation) String() string {
	short := make([]string, len(v.chain))
	for i, p := range v.chain {
		short[i] = strings.TrimPrefix(p, v.module+"/")
	}
	pkg, dep := short[0], short[len(short)-1]
	if len(short) == 2 {
		return fmt.Sprintf("%s imports %s: %s", pkg, dep, v.why)
	}
	return fmt.Sprintf("%s depends on %s through %s: %s", pkg, dep, strings.Join(short, " -> "), v.why)
}

// check applies rules to every package of module in imports, a map from each
// package to the packages it imports directly, and returns the violations in
// a stable order.
func check(module string, imports map[string][]string, rules []rule) []violation {
	var found []violation
	for _, pkg := range slices.Sorted(maps.Keys(imports)) {
		if pkg != module && !strings.HasPrefix(pkg, module+"/") {
			continue
		}
		var chain map[string]string // built on first need
		for _, r := range rules {
			bound, ok := matchAny(module, r.from, pkg, nil)
			if !ok {
				continue
			}
			if _, ok := matchAny(module, r.notFrom, pkg, bound); ok {
				continue
			}
			if chain == nil {
				chain = reach(pkg, imports)
			}
			for _, dep := range slices.Sorted(maps.Keys(chain)) {
				if _, ok := matchAny(module, r.forbid, dep, bound); !ok {
					continue
				}
				if _, ok := matchAny(module, r.allow, dep, bound); ok {
					continue
				}
				found = append(found, violation{module: module, chain: chainTo(pkg, dep, chain), why: r.why})
			}
		}
	}
	return found
}

// reach finds every package pkg depends on, and for each the package that
// imports it on a shortest chain from pkg.
func reach(pkg string, imports map[string][]string) map[string]string {
	via := make(map[string]string)
	queue := []string{pkg}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, q := range imports[p] {
			if _, seen := via[q]; seen || q == pkg {
				continue
			}
			via[q] = p
			queue = append(queue, q)
		}
	}
	return via
}

// chainTo is the import chain from pkg to dep recorded by reach.
func chainTo(pkg, dep string, via map[string]string) []string {
	chain := []string{dep}
	for p := dep; p != pkg; {
		p = via[p]
		chain = append(chain, p)
	}
	slices.Reverse(chain)
	return chain
}

func TestMatch(t *testing.T) {
	const m = "example.com/m"
	tests := []struct {
		pattern, path string
		bound         map[string]string
		want          bool
		wantBound     map[string]string
	}{
		{"storage/...", m + "/storage", nil, true, nil},
		{"storage/...", m + "/storage/log", nil, true, nil},
		{"storage/...", m + "/storagex", nil, false, nil},
		{"storage", m + "/storage/log", nil, false, nil},
		{"...", m, nil, true, nil}, // the whole module, its root package included
		{"...", m + "/engine", nil, true, nil},
		{"...", "example.com/other", nil, false, nil},
		{"github.com/prometheus/...", "github.com/prometheus/client_golang/prometheus", nil, true, nil},
		{"protocol/*/...", m + "/protocol", nil, false, nil},
		{"protocol/*/...", m + "/protocol/kafka/codec", nil, true, nil},
		{"protocol/{d}/...", m + "/protocol/kafka/codec", nil, true, map[string]string{"d": "kafka"}},
		{"protocol/{d}/...", m + "/protocol/kafka", map[string]string{"d": "kafka"}, true, map[string]string{"d": "kafka"}},
		{"protocol/{d}/...", m + "/protocol/amqp", map[string]string{"d": "kafka"}, false, nil},
	}
	for _, tt := range tests {
		got, ok := match(resolve(m, tt.pattern), tt.path, tt.bound)
		if ok != tt.want || (ok && !maps.Equal(got, tt.wantBound)) {
			t.Errorf("match(%q, %q, %v) = %v, %v; want %v, %v", tt.pattern, tt.path, tt.bound, got, ok, tt.wantBound, tt.want)
		}
	}
}

// TestCheckFindsViolations proves the checker, with Ferry's own rules, on
// import graphs made up to break them.
func TestCheckFindsViolations(t *testing.T) {
	const m = "github.com/ferrymq/ferry"
	const prom = "github.com/prometheus/client_golang/prometheus"
	tests := []struct {
		name  string
		graph map[string][]string // packages of the module are written relative to it
		want  []string            // violations, as "package -> forbidden dependency"
	}{
		{
			name: "a layered module passes",
			graph: map[string][]string{
				"cmd/ferry":                   {"server", "engine", "storage/log", "github.com/spf13/cobra"},
				"server":                      {"engine", "metrics", "protocol/kafka", "protocol/amqp", "web"},
				"metrics":                     {"engine", prom},
				"protocol/kafka":              {"engine", "protocol/kafka/codec"},
				"protocol/amqp":               {"engine", "protocol/amqp/spec"},
				"engine":                      {"storage/log", "storage/meta", "internal/clock"},
				"storage/log":                 {"storage/record", "storage/vfs", "internal/clock", "os"},
				"storage/record":              {"storage/record/internal/crc", "hash/crc32"},
				"tests":                       {"server", "client"},
				"client":                      {"api"},
				"internal/clock":              {"time"},
				prom:                          {"sync"},
				"storage/meta":                nil,
				"storage/vfs":                 nil,
				"web":                         nil,
				"api":                         nil,
				"protocol/amqp/spec":          nil,
				"protocol/kafka/codec":        nil,
				"storage/record/internal/crc": nil,
			},
			want: nil,
		},
		{
			name:  "storage imports the engine",
			graph: map[string][]string{"storage/meta": {"engine"}},
			want:  []string{"storage/meta -> engine"},
		},
		{
			name: "storage reaches the engine through a helper",
			graph: map[string][]string{
				"storage/log":    {"internal/hooks"},
				"internal/hooks": {"engine"},
			},
			want: []string{"storage/log -> engine"},
		},
		{
			name:  "record imports another ferry package",
			graph: map[string][]string{"storage/record": {"storage/vfs", "storage/record/internal/crc"}},
			want:  []string{"storage/record -> storage/vfs"},
		},
		{
			name:  "engine imports a front door and the server",
			graph: map[string][]string{"engine/queue": {"protocol/mqtt", "server"}},
			want:  []string{"engine/queue -> protocol/mqtt", "engine/queue -> server"},
		},
		{
			name: "front doors import each other",
			graph: map[string][]string{
				"protocol/kafka":     {"protocol/kafka/codec", "protocol/amqp/spec", "protocol"},
				"protocol/amqp/spec": {"protocol/amqp"},
			},
			want: []string{
				"protocol/kafka -> protocol/amqp",
				"protocol/kafka -> protocol/amqp/spec",
			},
		},
		{
			name: "prometheus outside metrics",
			graph: map[string][]string{
				"engine":         {prom},
				"client":         {"internal/stats"},
				"internal/stats": {"github.com/prometheus/common/expfmt"},
				"metrics":        {prom},
				"server":         {prom},
			},
			want: []string{
				"client -> github.com/prometheus/common/expfmt",
				"engine -> " + prom,
				"internal/stats -> github.com/prometheus/common/expfmt",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			graph := make(map[string][]string)
			for pkg, imps := range tt.graph {
				full := make([]string, len(imps))
				for i, imp := range imps {
					full[i] = fakePath(m, imp)
				}
				graph[fakePath(m, pkg)] = full
			}
			var got []string
			for _, v := range check(m, graph, rules) {
				pkg, dep := v.chain[0], v.chain[len(v.chain)-1]
				got = append(got, strings.TrimPrefix(pkg, m+"/")+" -> "+strings.TrimPrefix(dep, m+"/"))
				if v.why == "" || !strings.Contains(v.String(), v.why) {
					t.Errorf("violation %q does not say why", v)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("violations:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
		})
	}
}

// fakePath makes a package name of a test graph a full import path: names
// whose first element has no dot belong to the module, except a few from the
// standard library.
func fakePath(module, pkg string) string {
	switch pkg {
	case "os", "sync", "time", "hash/crc32":
		return pkg
	}
	return resolve(module, pkg)
}

func TestViolationSaysHow(t *testing.T) {
	const m = "example.com/m"
	graph := map[string][]string{
		m + "/low":    {m + "/helper"},
		m + "/helper": {m + "/high"},
	}
	r := []rule{{from: []string{"low"}, forbid: []string{"high"}, why: "low is below high"}}
	got := check(m, graph, r)
	want := "low depends on high through low -> helper -> high: low is below high"
	if len(got) != 1 || got[0].String() != want {
		t.Errorf("check = %v, want [%s]", got, want)
	}
}

func TestValidateRejectsBadRules(t *testing.T) {
	bad := []rule{
		{from: []string{"a"}, forbid: []string{"b"}},
		{from: []string{"a"}, why: "no forbid"},
		{from: []string{"a/.../b"}, forbid: []string{"b"}, why: "... in the middle"},
		{from: []string{"a//b"}, forbid: []string{"b"}, why: "empty element"},
		{from: []string{"protocol/*"}, forbid: []string{"protocol/{x}"}, why: "unbound variable"},
	}
	for _, r := range bad {
		if r.validate() == nil {
			t.Errorf("rule %+v passed validation", r)
		}
	}
}
