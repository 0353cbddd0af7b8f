package layering

import (
	"go/build"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// module is callwatch's module path; its packages sit at the same paths
// below the repository root.
const module = "github.com/callwatch/callwatch"

// root is the repository root, seen from this package's directory.
const root = "../.."

// imports returns the non-test imports of the package at the module-relative
// path rel.
func imports(t *testing.T, rel string) []string {
	t.Helper()
	p, err := build.ImportDir(filepath.Join(root, filepath.FromSlash(rel)), 0)
	if err != nil {
		t.Fatalf("reading package %s: %v", rel, err)
	}
	return p.Imports
}

// local returns the module-relative path of an import of callwatch's own, or
// "" for any other import.
func local(path string) string {
	if rest, ok := strings.CutPrefix(path, module+"/"); ok {
		return rest
	}
	return ""
}

// deps returns every package of callwatch's own that rel imports, directly
// or through another, each with the chain of imports that reaches it.
func deps(t *testing.T, rel string) map[string][]string {
	t.Helper()
	via := map[string][]string{}
	var walk func(pkg string, chain []string)
	walk = func(pkg string, chain []string) {
		for _, imp := range imports(t, pkg) {
			l := local(imp)
			if l == "" {
				continue
			}
			if _, seen := via[l]; seen || l == rel {
				continue
			}
			via[l] = append(slices.Clone(chain), l)
			walk(l, via[l])
		}
	}
	walk(rel, []string{rel})
	return via
}

// forbidden reports whether pkg is one of the listed packages or below one
// of the listed folders (a trailing "/"); "*" lists every package.
func forbidden(pkg string, list []string) bool {
	for _, f := range list {
		if f == "*" || pkg == f || (strings.HasSuffix(f, "/") && strings.HasPrefix(pkg, f)) {
			return true
		}
	}
	return false
}

// adapters are the packages at the edge: storage, delivery, HTTP, the
// exporter, the evaluation backends, and what wires or drives them.
var adapters = []string{
	"engine/memory", "engine/clickhouse", "storage/", "notify", "web", "exporter",
	"ruletest", "config", "cmd/", "bench", "internal/",
}

func TestNoPackageImportsOneItShouldNotKnow(t *testing.T) {
	for _, tc := range []struct {
		pkg string
		// never lists the packages pkg must not reach, directly or through
		// another package.
		never []string
		why   string
	}{
		{"dsl", []string{"*"}, "the language is a leaf"},
		{"rulefmt", append([]string{"engine"}, adapters...), "the rule-file format knows only the language"},
		{"engine", adapters, "evaluation declares the interfaces it consumes; adapters implement them"},
		{"config", []string{"exporter", "web", "engine/memory", "engine/clickhouse", "storage/", "ruletest", "cmd/", "bench", "internal/"},
			"reading the configuration knows no adapter's internals; cmd/callwatch wires the sections to the adapters"},
		{"web", []string{"engine/memory", "engine/clickhouse", "storage/", "exporter", "config", "ruletest", "cmd/", "bench", "internal/"},
			"HTTP serves what the engine and delivery hand it, never an evaluator or a store directly"},
		{"exporter", []string{"web", "engine/memory", "storage/", "ruletest", "cmd/", "bench", "internal/"},
			"the exporter reads the events through the ClickHouse adapter and the rules through engine"},
		{"notify", []string{"web", "exporter", "config", "engine/memory", "engine/clickhouse", "storage/", "ruletest", "cmd/", "bench", "internal/"},
			"delivery knows alerts, not where they were computed"},
	} {
		t.Run(tc.pkg, func(t *testing.T) {
			via := deps(t, tc.pkg)
			names := slices.Sorted(maps.Keys(via))
			for _, dep := range names {
				if forbidden(dep, tc.never) {
					t.Errorf("%s imports %s (%s): %s", tc.pkg, dep, strings.Join(via[dep], " → "), tc.why)
				}
			}
		})
	}
}

func TestEngineImportsOnlyTheLanguageTheFormatAndPrometheus(t *testing.T) {
	// What engine may import besides the standard library: callwatch's
	// language and rule-file format, Prometheus' libraries, YAML.
	allowed := []string{module + "/dsl", module + "/rulefmt", "github.com/prometheus/", "gopkg.in/yaml.v3"}
	for _, imp := range imports(t, "engine") {
		first, _, _ := strings.Cut(imp, "/")
		if !strings.Contains(first, ".") {
			continue // the standard library
		}
		if !slices.ContainsFunc(allowed, func(a string) bool { return imp == a || strings.HasPrefix(imp, a) && strings.HasSuffix(a, "/") }) {
			t.Errorf("engine imports %s; evaluation imports only %v and the standard library: declare an interface in engine and implement it in an adapter", imp, allowed)
		}
	}
}

func TestTheRulesSeeEveryPackage(t *testing.T) {
	// A rule about a package that does not exist (renamed, moved) would
	// pass silently; each one must read a package with imports.
	for _, pkg := range []string{"dsl", "rulefmt", "engine", "config", "web", "exporter", "notify"} {
		if len(imports(t, pkg)) == 0 {
			t.Errorf("package %s has no imports: is the rule about the right folder?", pkg)
		}
	}
}
