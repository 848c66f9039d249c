package dnsd

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/farmlb/farmlb/internal/farmtest"
)

// TestCSKRollover rolls a combined signing key the double-DS way that
// dnsd/README.md describes, behind a validating Unbound whose trust anchors
// play the parent's DS set: publish the new CSK and add its DS, sign with
// it, retire the old one. Every answer on the way must be secure.
func TestCSKRollover(t *testing.T) {
	dir := t.TempDir()
	csk1 := writeTestKeys(t, filepath.Join(dir, "1"), testZone, false)[0]
	csk2 := writeTestKeys(t, filepath.Join(dir, "2"), testZone, false)[0]
	cfg := testConfig(newTestSource(testList(t)))
	cfg.Listen = "127.0.0.81:0"
	cfg.Zone.NameServers = nil
	short := 2 * time.Second
	cfg.Zone.TTL = TTLs{Service: short, Farm: short, SRV: short, Server: short, NS: short, SOA: short, Negative: short}
	cfg.Now = time.Now // Unbound checks the signatures' times against its clock
	load := func(sign, publish []string) *Keys {
		t.Helper()
		ks, err := LoadKeys(sign, publish)
		if err != nil {
			t.Fatal(err)
		}
		return ks
	}
	cfg.Zone.Keys = load([]string{csk1}, nil)
	s := startServer(t, cfg)

	ds := func(bases ...string) string {
		var b strings.Builder
		for _, base := range bases {
			d, err := os.ReadFile(base + ".ds")
			if err != nil {
				t.Fatal(err)
			}
			b.Write(d)
		}
		path := filepath.Join(t.TempDir(), "anchor.ds")
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("  module-config: \"validator iterator\"\n  trust-anchor-file: %q\n", path)
	}
	stubs := map[string]string{testZone: s.Addr().String()}
	n := 0
	// keepResolving asks resolver for names whose answers leave its cache
	// within seconds, and a name never asked before, until d has passed.
	keepResolving := func(resolver string, d time.Duration) {
		t.Helper()
		for end := time.Now().Add(d); ; {
			n++
			for _, q := range []struct {
				name  string
				qtype uint16
			}{{testZone, dns.TypeA}, {testZone, dns.TypeDNSKEY}, {"_farm." + testZone, dns.TypeTXT}, {fmt.Sprintf("nx%d.%s", n, testZone), dns.TypeA}} {
				m := query(q.name, q.qtype)
				m.AuthenticatedData = true
				m.SetEdns0(1232, true)
				r, _, err := (&dns.Client{Net: "tcp", Timeout: 5 * time.Second}).Exchange(m, resolver)
				if err != nil {
					t.Fatal(err)
				}
				if !r.AuthenticatedData || (r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeNameError) {
					t.Fatalf("%s %s: rcode %s AD %v, want secure", q.name, dns.TypeToString[q.qtype], dns.RcodeToString[r.Rcode], r.AuthenticatedData)
				}
			}
			if time.Now().After(end) {
				return
			}
			time.Sleep(100 * time.Millisecond) // the pace of the queries
		}
	}
	setKeys := func(ks *Keys) {
		t.Helper()
		z := s.Zone()
		z.Keys = ks
		if err := s.SetZone(z); err != nil {
			t.Fatal(err)
		}
	}
	old := farmtest.StartUnbound(t, "127.0.0.82", stubs, ds(csk1))
	keepResolving(old, 0)
	// 1. Publish CSK2; the parent adds its DS (a resolver that starts now
	// has both as trust anchors).
	setKeys(load([]string{csk1}, []string{csk2}))
	both := farmtest.StartUnbound(t, "127.0.0.83", stubs, ds(csk1, csk2))
	// 2. Wait the DNSKEY TTL (and the DS TTL).
	keepResolving(old, short+time.Second)
	keepResolving(both, 0)
	// 3. Sign with CSK2, keep CSK1 published; wait the largest TTL.
	setKeys(load([]string{csk2}, []string{csk1}))
	keepResolving(both, short+time.Second)
	// 4. Retire CSK1; the parent removes its DS.
	setKeys(load([]string{csk2}, nil))
	keepResolving(both, short+time.Second)
	keepResolving(farmtest.StartUnbound(t, "127.0.0.84", stubs, ds(csk2)), 0)
}
