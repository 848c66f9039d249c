// Package archtest holds the test that keeps the import rules of
// DESIGN.md ("may import") true: farm stays on the standard library,
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
	Deps       []string
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
