package testbed

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/farmlb/farmlb/config"
)

// The farm file the lab writes must be one the shared config package
// accepts, with every host where the plan put it.
func TestFarmFileLoads(t *testing.T) {
	for _, name := range []string{"failover", "partition"} {
		t.Run(name, func(t *testing.T) {
			s, err := LoadScenario(filepath.Join("scenarios", name+".yaml"))
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			p := PlanFor(s)
			path, err := writeFarm(dir, s, p)
			if err != nil {
				t.Fatal(err)
			}
			f, err := config.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if f.Service != Service || len(f.Nodes) != len(s.Nodes) || len(f.Observers) != len(p.NS) {
				t.Fatalf("loaded %+v", f)
			}
			for i, n := range f.Nodes {
				if n.Name != p.Nodes[i].Name || n.URL != NodeURL(p.Nodes[i]) || len(n.Addrs) != 1 || n.Addrs[0] != p.Nodes[i].Addr {
					t.Errorf("node %d: %+v", i, n)
				}
				if !LabNet.Contains(n.Addrs[0]) {
					t.Errorf("node %s outside the lab net", n.Name)
				}
			}
			if got := f.TLS.CertFile("serverA"); got != filepath.Join(dir, "pki", "serverA.crt") {
				t.Errorf("cert path %s", got)
			}
			if s.DNS {
				conf, err := writeUnbound(dir, p)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := os.ReadFile(conf)
				for _, want := range []string{"stub-addr: 198.18.2.1", "stub-addr: 198.18.2.2", "interface: 198.18.3.1", `name: "` + Service + `"`} {
					if !strings.Contains(string(b), want) {
						t.Errorf("unbound.conf lacks %q", want)
					}
				}
			}
		})
	}
}
