// Package archtest holds the test that keeps the import rules of
// docs/DESIGN.md ("may import") true: farm stays on the standard library,
// clientlib stays light enough to embed in any client, nothing imports cmd/.
package archtest

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/farmlb/farmlb"

type pkg struct {
	ImportPath string
	Standard   bool
	Imports    []string // direct
	Deps       []string // transitive
}

// listDeps returns, for each package of the module, its transitive
// dependencies as `go list` reports them.
func listDeps(t *testing.T) map[string]pkg {
	t.Helper()
	out, err := exec.Command("go", "list", "-json", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	pkgs := map[string]pkg{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs[p.ImportPath] = p
	}
	return pkgs
}

func TestImportRules(t *testing.T) {
	pkgs := listDeps(t)
	if _, ok := pkgs[module+"/farm"]; !ok {
		t.Fatalf("package farm not found in %d packages", len(pkgs))
	}
	for _, v := range violations(pkgs) {
		t.Error(v)
	}
}

// TestImportRulesCatch proves the rules fail on the imports they forbid.
func TestImportRulesCatch(t *testing.T) {
	bad := map[string]pkg{
		module + "/farm":      {Deps: []string{"fmt", "gopkg.in/yaml.v3"}},
		module + "/clientlib": {Deps: []string{"github.com/miekg/dns", "github.com/quic-go/quic-go"}},
		module + "/pushd":     {Deps: []string{module + "/cmd/farmctl"}},
	}
	bad[module+"/farm/bench/selectsim"] = pkg{Deps: []string{module + "/farm", "github.com/miekg/dns"}} // a main may
	got := violations(bad)
	if len(got) != 3 {
		t.Fatalf("violations = %q, want 3", got)
	}
}

func violations(pkgs map[string]pkg) []string {
	isStd := func(dep string) bool {
		first, _, _ := strings.Cut(dep, "/")
		return !strings.Contains(first, ".")
	}
	rules := []struct {
		name      string
		pkgPrefix string
		forbidden func(dep string) bool
	}{
		{"farm imports only the standard library", module + "/farm$", func(d string) bool {
			return !isStd(d)
		}},
		{"clientlib stays off quic-go, netlink, urfave/cli and peerlink", module + "/clientlib", func(d string) bool {
			for _, bad := range []string{"github.com/quic-go/", "github.com/vishvananda/", "github.com/urfave/cli", module + "/peerlink", module + "/pushd", module + "/testbed"} {
				if strings.HasPrefix(d, bad) {
					return true
				}
			}
			return false
		}},
		{"nothing imports cmd/", module + "/", func(d string) bool {
			return strings.HasPrefix(d, module+"/cmd/")
		}},
	}
	var out []string
	for _, r := range rules {
		for path, p := range pkgs {
			// A pattern ending in $ names one package; otherwise a prefix.
			if exact, ok := strings.CutSuffix(r.pkgPrefix, "$"); ok && path != exact || !ok && !strings.HasPrefix(path, r.pkgPrefix) {
				continue
			}
			for _, d := range p.Deps {
				if r.forbidden(d) {
					out = append(out, r.name+": "+path+" depends on "+d)
				}
			}
		}
	}
	return out
}

// allowedImports is the architecture: for each library package, the module
// packages and third-party modules it may import directly (the standard
// library is always allowed). docs/ARCHITECTURE.md shows the same table and
// says where it departs from docs/DESIGN.md and why.
var allowedImports = map[string][]string{
	"farm":      {},
	"config":    {"farm", "go.yaml.in/yaml/v3"},
	"peerlink":  {"farm", "config", "github.com/quic-go/quic-go", "github.com/prometheus/client_golang"},
	"pushd":     {"farm", "peerlink", "webclient", "github.com/prometheus/client_golang", "golang.org/x/sys"},
	"dnsd":      {"farm", "peerlink", "github.com/miekg/dns", "github.com/prometheus/client_golang", "golang.org/x/net", "golang.org/x/sys", "github.com/dchest/siphash"},
	"clientlib": {"farm", "github.com/miekg/dns"},
	"webclient": {},
	"testbed":   {"farm", "clientlib", "internal/proc", "github.com/vishvananda/netlink", "github.com/vishvananda/netns", "github.com/miekg/dns", "go.yaml.in/yaml/v3", "golang.org/x/sys"},
	// internal/cliutil: appliance/cmd/… are mains governed by this row, and
	// share the exit statuses and usage errors of every farmlb command line.
	"appliance": {"appliance", "config", "go.yaml.in/yaml/v3", "github.com/vishvananda/netlink", "github.com/vishvananda/netns", "golang.org/x/sys", "github.com/urfave/cli/v2", "internal/cliutil"},
}

// importViolations checks each library package's direct imports against
// allowedImports; a package is governed by its top folder (appliance/initd by
// "appliance").
func importViolations(pkgs map[string]pkg) []string {
	var out []string
	for path, p := range pkgs {
		rel, ok := strings.CutPrefix(path, module+"/")
		if !ok {
			continue
		}
		top, _, _ := strings.Cut(rel, "/")
		allowed, governed := allowedImports[top]
		if !governed {
			continue // cmd/, internal/, bench/, tools: the mains and test helpers
		}
		if top == "farm" && rel != "farm" {
			continue // farm/bench/selectsim is a main
		}
		for _, imp := range p.Imports {
			first, _, _ := strings.Cut(imp, "/")
			if !strings.Contains(first, ".") {
				continue // standard library
			}
			ok := false
			for _, a := range allowed {
				target := a
				if !strings.Contains(strings.SplitN(a, "/", 2)[0], ".") {
					target = module + "/" + a
				}
				if imp == target || strings.HasPrefix(imp, target+"/") {
					ok = true
				}
			}
			if !ok {
				out = append(out, rel+" imports "+imp+", which the architecture does not allow")
			}
		}
	}
	return out
}

func TestArchitecture(t *testing.T) {
	for _, v := range importViolations(listDeps(t)) {
		t.Error(v)
	}
}

func TestArchitectureCatches(t *testing.T) {
	bad := map[string]pkg{
		module + "/clientlib":       {Imports: []string{module + "/peerlink"}},
		module + "/pushd":           {Imports: []string{module + "/dnsd", "github.com/miekg/dns"}},
		module + "/appliance/x":     {Imports: []string{module + "/pushd"}},
		module + "/appliance/cmd/y": {Imports: []string{module + "/internal/cliutil"}}, // allowed
		module + "/appliance/cmd/z": {Imports: []string{module + "/internal/proc"}},
		module + "/cmd/farmctl":     {Imports: []string{module + "/peerlink"}},             // mains may
		module + "/dnsd":            {Imports: []string{"github.com/miekg/dns/v2", "fmt"}}, // a sub-path of an allowed module
		module + "/config":          {Imports: []string{module + "/farm"}},
		module + "/webclient/x/y":   {Imports: []string{"embed"}},
	}
	if got := importViolations(bad); len(got) != 5 {
		t.Fatalf("violations = %q, want 5", got)
	}
}
