package dnsd

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/farmlb/farmlb/farm"
)

// testNow is the clock of testConfig.
var testNow = time.Date(2026, 11, 29, 14, 0, 0, 0, time.UTC)

// writeTestKeys makes keys for zone in dir: one ECDSA combined signing key,
// or (split) an Ed25519 KSK and ZSK. It returns the paths without suffix.
func writeTestKeys(t testing.TB, dir, zone string, split bool) []string {
	t.Helper()
	alg, seps := uint8(dns.ECDSAP256SHA256), []bool{true}
	if split {
		alg, seps = dns.ED25519, []bool{true, false}
	}
	var paths []string
	for _, sep := range seps {
		k, priv, err := GenerateKey(zone, alg, sep)
		if err != nil {
			t.Fatal(err)
		}
		base, err := WriteKey(dir, k, priv, time.Now(), false)
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, base)
	}
	return paths
}

// testKeys makes and loads keys for zone (see writeTestKeys).
func testKeys(t testing.TB, zone string, split bool) *Keys {
	t.Helper()
	ks, err := LoadKeys(writeTestKeys(t, t.TempDir(), zone, split), nil)
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

// verify checks every RRSIG of m against the set it covers with the keys'
// DNSKEYs at time now, and that every set (but OPT) is covered. It returns the number of signatures.
func verify(m *dns.Msg, keys []*dns.DNSKEY, now time.Time) (int, error) {
	n := 0
	for _, sec := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		sets := map[string][]dns.RR{}
		var sigs []*dns.RRSIG
		for _, rr := range sec {
			h := rr.Header()
			switch rr := rr.(type) {
			case *dns.RRSIG:
				sigs = append(sigs, rr)
			case *dns.OPT:
			default:
				k := strings.ToLower(h.Name) + "/" + dns.TypeToString[h.Rrtype]
				sets[k] = append(sets[k], rr)
			}
		}
		covered := map[string]bool{}
		for _, sig := range sigs {
			k := strings.ToLower(sig.Hdr.Name) + "/" + dns.TypeToString[sig.TypeCovered]
			set := sets[k]
			if len(set) == 0 {
				return n, fmt.Errorf("RRSIG over %s with no such set", k)
			}
			i := slices.IndexFunc(keys, func(d *dns.DNSKEY) bool { return d.KeyTag() == sig.KeyTag })
			if i < 0 {
				return n, fmt.Errorf("RRSIG over %s by unknown key %d", k, sig.KeyTag)
			}
			if err := sig.Verify(keys[i], set); err != nil {
				return n, fmt.Errorf("RRSIG over %s: %v", k, err)
			}
			if !sig.ValidityPeriod(now) {
				return n, fmt.Errorf("RRSIG over %s not valid at %v", k, now)
			}
			covered[k] = true
			n++
		}
		for k := range sets {
			if !covered[k] {
				return n, fmt.Errorf("set %s is not signed", k)
			}
		}
	}
	return n, nil
}

func dnskeys(ks *Keys) []*dns.DNSKEY {
	var out []*dns.DNSKEY
	for _, k := range append(slices.Clone(ks.Sign), ks.Publish...) {
		out = append(out, k.DNSKEY)
	}
	return out
}

// TestSignedAnswers asks a signed zone every name and type with and without
// the DO bit: with it, every set comes with a signature that verifies, and
// negative answers carry the compact-denial NSEC; without it, nothing of
// DNSSEC.
func TestSignedAnswers(t *testing.T) {
	for _, split := range []bool{false, true} {
		t.Run(fmt.Sprintf("split=%v", split), func(t *testing.T) {
			ks := testKeys(t, testZone, split)
			cfg := testConfig(newTestSource(testList(t)))
			cfg.Zone.Keys = ks
			s := startServer(t, cfg)
			type tc struct {
				qname string
				qtype uint16
				rcode int
				// answer: the type of the answer's records (0: none,
				// a negative answer)
				answer uint16
				// bitmap: the NSEC's types in a negative answer
				bitmap []uint16
			}
			tests := []tc{
				{testZone, dns.TypeA, dns.RcodeSuccess, dns.TypeA, nil},
				{"Stream.FarmLB.test.", dns.TypeAAAA, dns.RcodeSuccess, dns.TypeAAAA, nil},
				{testZone, dns.TypeSOA, dns.RcodeSuccess, dns.TypeSOA, nil},
				{testZone, dns.TypeNS, dns.RcodeSuccess, dns.TypeNS, nil},
				{testZone, dns.TypeDNSKEY, dns.RcodeSuccess, dns.TypeDNSKEY, nil},
				{"_farm." + testZone, dns.TypeTXT, dns.RcodeSuccess, dns.TypeTXT, nil},
				{"_farmlb._tcp." + testZone, dns.TypeSRV, dns.RcodeSuccess, dns.TypeSRV, nil},
				{"serverB." + testZone, dns.TypeA, dns.RcodeSuccess, dns.TypeA, nil},
				{testZone, dns.TypeMX, dns.RcodeSuccess, 0, []uint16{dns.TypeA, dns.TypeNS, dns.TypeSOA, dns.TypeAAAA, dns.TypeRRSIG, dns.TypeNSEC, dns.TypeDNSKEY}},
				{"_tcp." + testZone, dns.TypeA, dns.RcodeSuccess, 0, []uint16{dns.TypeRRSIG, dns.TypeNSEC}},
				{"serverB." + testZone, dns.TypeAAAA, dns.RcodeSuccess, 0, []uint16{dns.TypeA, dns.TypeRRSIG, dns.TypeNSEC}},
				{"serverB." + testZone, dns.TypeNSEC, dns.RcodeSuccess, dns.TypeNSEC, nil},
				{"NoSuch." + testZone, dns.TypeA, dns.RcodeSuccess, 0, []uint16{dns.TypeRRSIG, dns.TypeNSEC, dns.TypeNXNAME}},
				{"a.b.c." + testZone, dns.TypeTXT, dns.RcodeSuccess, 0, []uint16{dns.TypeRRSIG, dns.TypeNSEC, dns.TypeNXNAME}},
			}
			for _, tc := range tests {
				for _, network := range []string{"udp", "tcp"} {
					t.Run(fmt.Sprintf("%s/%s/%s", tc.qname, dns.TypeToString[tc.qtype], network), func(t *testing.T) {
						m := query(tc.qname, tc.qtype)
						m.SetEdns0(1232, true)
						r := exchange(t, s, network, m)
						if r.Rcode != tc.rcode || !r.Authoritative {
							t.Fatalf("rcode %s AA %v, want %s AA", dns.RcodeToString[r.Rcode], r.Authoritative, dns.RcodeToString[tc.rcode])
						}
						if o := r.IsEdns0(); o == nil || !o.Do() {
							t.Fatal("DO not echoed")
						}
						n, err := verify(r, dnskeys(ks), testNow)
						if err != nil {
							t.Fatalf("%v\n%v", err, r)
						}
						if n == 0 {
							t.Fatalf("no signature\n%v", r)
						}
						if tc.answer != 0 {
							if len(r.Answer) == 0 || r.Answer[0].Header().Rrtype != tc.answer {
								t.Fatalf("answer %v, want %s", r.Answer, dns.TypeToString[tc.answer])
							}
							return
						}
						var nsec *dns.NSEC
						for _, rr := range r.Ns {
							if x, ok := rr.(*dns.NSEC); ok {
								nsec = x
							}
						}
						if len(r.Answer) != 0 || nsec == nil {
							t.Fatalf("want a negative answer with an NSEC:\n%v", r)
						}
						if !strings.EqualFold(nsec.Hdr.Name, tc.qname) || !strings.EqualFold(nsec.NextDomain, "\\000."+tc.qname) {
							t.Errorf("NSEC %v: want %s to \\000.%s (compact denial)", nsec, tc.qname, tc.qname)
						}
						want := slices.Sorted(slices.Values(tc.bitmap))
						if !slices.Equal(nsec.TypeBitMap, want) {
							t.Errorf("NSEC types %v, want %v", nsec.TypeBitMap, want)
						}
					})
				}
			}
			t.Run("without DO nothing of DNSSEC", func(t *testing.T) {
				for _, tc := range tests {
					m := query(tc.qname, tc.qtype)
					m.SetEdns0(1232, false)
					r := exchange(t, s, "udp", m)
					for _, rr := range append(append(slices.Clone(r.Answer), r.Ns...), r.Extra...) {
						if ty := rr.Header().Rrtype; ty == dns.TypeRRSIG || ty == dns.TypeNSEC {
							t.Errorf("%s %s: %v without DO", tc.qname, dns.TypeToString[tc.qtype], rr)
						}
					}
					if tc.bitmap != nil && slices.Contains(tc.bitmap, dns.TypeNXNAME) && r.Rcode != dns.RcodeNameError {
						t.Errorf("%s: rcode %s without DO, want NXDOMAIN", tc.qname, dns.RcodeToString[r.Rcode])
					}
				}
			})
		})
	}
}

// TestSignedRotation checks that every rotation of the service name's
// addresses still verifies: a signature covers the set in canonical order.
func TestSignedRotation(t *testing.T) {
	ks := testKeys(t, testZone, false)
	cfg := testConfig(newTestSource(bigList(t, 5)))
	cfg.Zone.Keys = ks
	s := startServer(t, cfg)
	firsts := map[string]bool{}
	for i := 0; i < 10; i++ {
		m := query(testZone, dns.TypeA)
		m.SetEdns0(1232, true)
		r := exchange(t, s, "udp", m)
		if len(r.Answer) != 6 {
			t.Fatalf("answer %v, want 5 A and an RRSIG", r.Answer)
		}
		firsts[r.Answer[0].(*dns.A).A.String()] = true
		if _, err := verify(r, dnskeys(ks), testNow); err != nil {
			t.Fatal(err)
		}
	}
	if len(firsts) != 5 {
		t.Errorf("first addresses %v: the set did not rotate", firsts)
	}
}

// TestResignReuse checks what a table change re-signs: the sets that
// changed get new signatures, the others keep theirs; and that a zone whose
// table does not change is re-signed before its signatures expire.
func TestResignReuse(t *testing.T) {
	now := testNow
	src := newTestSource(bigList(t, 20))
	cfg := testConfig(src)
	cfg.Zone.Keys = testKeys(t, testZone, false)
	cfg.Now = func() time.Time { return now }
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(t.Context())
	sig := func(name string, t uint16) *dns.RRSIG {
		n := s.zone.Load().nodes[string(wireName(name))]
		return n.set(t).sigs[0].(*dns.RRSIG)
	}
	own, farmSig := sig("server001."+testZone, dns.TypeA), sig("_farm."+testZone, dns.TypeTXT)
	l := bigList(t, 20)
	l.Servers[3].Status = farm.StatusDown
	src.Set(l)
	if err := s.rebuild(false); err != nil {
		t.Fatal(err)
	}
	if sig("server001."+testZone, dns.TypeA) != own {
		t.Error("a server's own address was signed again, though it did not change")
	}
	if sig("_farm."+testZone, dns.TypeTXT).Signature == farmSig.Signature {
		t.Error("_farm changed but kept its signature")
	}
	if z := s.zone.Load(); z.refreshAt.Sub(now) != sigValidity-sigRefresh {
		t.Errorf("refresh in %v, want %v", z.refreshAt.Sub(now), sigValidity-sigRefresh)
	}
	// Days later, the table unchanged: the refresh signs everything anew.
	now = now.Add(sigRefresh)
	if err := s.rebuild(false); err != nil {
		t.Fatal(err)
	}
	got := sig("server001."+testZone, dns.TypeA)
	if got == own || time.Unix(int64(got.Expiration), 0).Sub(now) != sigValidity || !time.Unix(int64(got.Inception), 0).Equal(now.Add(-sigSkew)) {
		t.Errorf("after the refresh: inception %d expiration %d, want %d and %d", got.Inception, got.Expiration, now.Add(-sigSkew).Unix(), now.Add(sigValidity).Unix())
	}
}

// TestKeyErrors checks that bad keys are clear errors.
func TestKeyErrors(t *testing.T) {
	dir := t.TempDir()
	good := writeTestKeys(t, dir, testZone, false)[0]
	other := writeTestKeys(t, filepath.Join(dir, "other"), "other.test.", false)[0]
	split := writeTestKeys(t, filepath.Join(dir, "split"), testZone, true)
	// An RSA key in BIND's format (algorithm 8).
	rsa := filepath.Join(dir, "Kstream.farmlb.test.+008+00001")
	if err := os.WriteFile(rsa+".key", []byte(testZone+" 3600 IN DNSKEY 257 3 8 AwEAAcUlFV1vhmqx6NSOUOq2R/dsR7Xm3upJj7IommWSpJABVfW8Q0rO vXdM6kzt+TAu92L9AbsUdblMFin8CVF3n4s=\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A private key that is not the DNSKEY's.
	mixed := filepath.Join(dir, "mixed", "Kstream.farmlb.test.+013+00002")
	_ = os.MkdirAll(filepath.Dir(mixed), 0o755)
	pub, _ := os.ReadFile(good + ".key")
	otherKey := writeTestKeys(t, filepath.Join(dir, "third"), testZone, false)[0]
	priv, _ := os.ReadFile(otherKey + ".private")
	_ = os.WriteFile(mixed+".key", pub, 0o644)
	_ = os.WriteFile(mixed+".private", priv, 0o600)

	tests := []struct {
		name          string
		sign, publish []string
		zone          string
		err           string
	}{
		{"missing file", []string{filepath.Join(dir, "Knone")}, nil, testZone, "no such file"},
		{"missing private key", []string{good + "x"}, nil, testZone, "no such file"},
		{"wrong algorithm", []string{rsa}, nil, testZone, "algorithm 8 (RSASHA256) is not supported"},
		{"key of another zone", []string{other}, nil, testZone, "is a key for zone other.test., not for " + testZone},
		{"keys of two zones", []string{good, other}, nil, testZone, "for zone other.test."},
		{"two algorithms", []string{good, split[1]}, nil, testZone, "one algorithm per zone"},
		{"private key of another key", []string{mixed}, nil, testZone, "does not match the DNSKEY"},
		{"nothing signs", nil, []string{good}, testZone, "no signing key"},
		{"a key twice", []string{good}, []string{good + ".key"}, testZone, "same key tag"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ks, err := LoadKeys(tc.sign, tc.publish)
			if err == nil {
				cfg := testConfig(newTestSource(testList(t)))
				cfg.Zone.Keys = ks
				_, err = New(cfg)
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err %v, want one containing %q", err, tc.err)
			}
		})
	}
	t.Run("the file names: .key, .private or neither", func(t *testing.T) {
		for _, p := range []string{good, good + ".key", good + ".private"} {
			if _, err := LoadKeys([]string{p}, nil); err != nil {
				t.Errorf("%s: %v", p, err)
			}
		}
	})
}

// TestSetZoneBadKeysKeepsLast checks that a zone change with bad keys (as on
// SIGHUP) is refused and the last good keys keep signing.
func TestSetZoneBadKeysKeepsLast(t *testing.T) {
	ks := testKeys(t, testZone, false)
	cfg := testConfig(newTestSource(testList(t)))
	cfg.Zone.Keys = ks
	s := startServer(t, cfg)
	z := s.Zone()
	z.Keys = testKeys(t, "other.test.", false)
	if err := s.SetZone(z); err == nil || !strings.Contains(err.Error(), "other.test.") {
		t.Fatalf("SetZone with another zone's key: %v", err)
	}
	m := query(testZone, dns.TypeA)
	m.SetEdns0(1232, true)
	if n, err := verify(exchange(t, s, "udp", m), dnskeys(ks), testNow); err != nil || n == 0 {
		t.Fatalf("after the refused change: %d signatures, %v", n, err)
	}
}

// TestSignedTruncation: a signed answer larger than the client's buffer is
// truncated over UDP and comes whole, signatures and all, over TCP.
func TestSignedTruncation(t *testing.T) {
	ks := testKeys(t, testZone, false)
	cfg := testConfig(newTestSource(bigList(t, 100)))
	cfg.Zone.Keys = ks
	s := startServer(t, cfg)
	for _, tc := range []struct {
		name  string
		qname string
		qtype uint16
		edns  uint16
	}{
		{"_farm TXT, buffer 1232", "_farm." + testZone, dns.TypeTXT, 1232},
		{"SRV, buffer 1232", "_farmlb._tcp." + testZone, dns.TypeSRV, 1232},
		{"service A, buffer 512", testZone, dns.TypeA, 512},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := query(tc.qname, tc.qtype)
			m.SetEdns0(tc.edns, true)
			raw := rawExchange(t, s, "udp", packed(t, m))
			if len(raw) != 1 || len(raw[0]) > int(max(tc.edns, 512)) {
				t.Fatalf("UDP replies %d, want one of at most %d bytes", len(raw), tc.edns)
			}
			r := new(dns.Msg)
			if err := r.Unpack(raw[0]); err != nil {
				t.Fatal(err)
			}
			if !r.Truncated {
				t.Errorf("UDP reply of %d bytes without TC", len(raw[0]))
			}
			whole := exchange(t, s, "tcp", m)
			if whole.Truncated {
				t.Fatal("TC over TCP")
			}
			n, err := verify(whole, dnskeys(ks), testNow)
			if err != nil || n == 0 {
				t.Fatalf("over TCP: %d signatures, %v", n, err)
			}
			got := 0
			for _, rr := range whole.Answer {
				if rr.Header().Rrtype == tc.qtype {
					got++
				}
			}
			if want := map[uint16]int{dns.TypeTXT: 1, dns.TypeSRV: 100, dns.TypeA: 100}[tc.qtype]; got != want {
				t.Errorf("%d records over TCP, want %d", got, want)
			}
		})
	}
}

// BenchmarkAnswerDO measures the query path of a signed zone for queries with
// the DO bit (no sockets), per query: the same copy of precomputed bytes as
// without DO, signatures included; a name that does not exist takes its
// signed denial from the cache after the first query.
func BenchmarkAnswerDO(b *testing.B) {
	zs := testZones(b)
	z := zs[len(zs)-2] // the small farm, signed
	for _, tc := range []struct {
		name  string
		qname string
		qtype uint16
	}{
		{"A", testZone, dns.TypeA},
		{"TXT", "_farm." + testZone, dns.TypeTXT},
		{"NODATA", testZone, dns.TypeMX},
		{"NXDOMAIN", "nope." + testZone, dns.TypeA},
	} {
		b.Run(tc.name, func(b *testing.B) {
			m := query(tc.qname, tc.qtype)
			m.SetEdns0(1232, true)
			q, _ := m.Pack()
			buf := make([]byte, 0, 1232)
			b.ReportAllocs()
			for b.Loop() {
				out, res := z.answer(buf, q, true)
				if out == nil || res.slow {
					b.Fatal("no answer, or the slow path")
				}
			}
		})
	}
	b.Run("NXDOMAIN-new-name", func(b *testing.B) {
		// A name never asked before: one signature per query.
		buf := make([]byte, 0, 1232)
		i := 0
		for b.Loop() {
			i++
			m := query(fmt.Sprintf("n%d.%s", i, testZone), dns.TypeA)
			m.SetEdns0(1232, true)
			q, _ := m.Pack()
			if out, _ := z.answer(buf, q, true); out == nil {
				b.Fatal("no answer")
			}
		}
	})
}

// BenchmarkResign measures the time and CPU to build and sign the zone after
// a table change (a server goes DOWN or comes back: the service name's
// addresses, SRV, _farm and the SOA change; every server's own name keeps
// its signatures), for farms of 3, 100 and 800 servers; and the full signing
// of a zone whose signatures all come due (the refresh); "unsigned" is the
// same table change in a zone without keys, for comparison.
func BenchmarkResign(b *testing.B) {
	for _, n := range []int{3, 100, 800} {
		for _, kind := range []string{"unsigned", "change", "refresh-all"} {
			full := kind == "refresh-all"
			b.Run(fmt.Sprintf("servers=%d/%s", n, kind), func(b *testing.B) {
				now := testNow
				tables := []*farm.List{bigList(b, n), bigList(b, n)}
				tables[1].Servers[0].Status = farm.StatusDown
				src := newTestSource(tables[0])
				cfg := testConfig(src)
				if kind != "unsigned" {
					cfg.Zone.Keys = testKeys(b, testZone, false)
				}
				cfg.Now = func() time.Time { return now }
				s, err := New(cfg)
				if err != nil {
					b.Fatal(err)
				}
				defer s.Shutdown(b.Context())
				i := 0
				cpu0 := cpuTime()
				for b.Loop() {
					i++
					src.Set(tables[i%2])
					if full {
						now = now.Add(sigRefresh) // every signature due
					}
					if err := s.rebuild(false); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/1e6, "cpu-ms/op")
			})
		}
	}
}

// TestDenialSignedOnce: a name that does not exist is signed on its first
// query with DO and answered from the cache after (the metric counts the
// signatures), and the build's time is measured.
func TestDenialSignedOnce(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := testConfig(newTestSource(testList(t)))
	cfg.Zone.Keys = testKeys(t, testZone, false)
	cfg.Registerer = reg
	s := startServer(t, cfg)
	for i, name := range []string{"a." + testZone, "A." + testZone, "b." + testZone, "a." + testZone} {
		m := query(name, dns.TypeA)
		m.SetEdns0(1232, true)
		exchange(t, s, []string{"udp", "tcp"}[i%2], m)
	}
	if n, _ := metricValue(t, reg, "farmlb_dnsd_dnssec_denials_signed_total", nil); n != 2 {
		t.Errorf("%v denials signed for two names asked four times, want 2", n)
	}
	if n, _ := metricValue(t, reg, "farmlb_dnsd_dnssec_build_seconds", nil); n < 1 {
		t.Errorf("%v builds measured, want at least the first", n)
	}
}
