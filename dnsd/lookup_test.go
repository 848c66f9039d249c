package dnsd

import (
	"fmt"
	"slices"
	"testing"

	"github.com/miekg/dns"
)

// TestLookup asks a server on loopback, over UDP and TCP, for every kind of
// name in the zone, in the manner of CoreDNS's plugin/file lookup tests.
func TestLookup(t *testing.T) {
	s := startServer(t, testConfig(newTestSource(testList(t))))
	serial := s.zone.Load().serial
	soa := fmt.Sprintf("stream.farmlb.test. 3600 IN SOA ns1.stream.farmlb.test. hostmaster.stream.farmlb.test. %d 3600 600 604800 5", serial)
	negSOA := fmt.Sprintf("stream.farmlb.test. 5 IN SOA ns1.stream.farmlb.test. hostmaster.stream.farmlb.test. %d 3600 600 604800 5", serial)

	tests := []struct {
		name      string
		qname     string
		qtype     uint16
		rcode     int
		aa        bool
		unordered bool // the answer rotates: compare as sets
		answer    []string
		ns        []string
		extra     []string
	}{
		{
			name: "service A: the UP servers of the best group", qname: testZone, qtype: dns.TypeA, aa: true, unordered: true,
			answer: []string{"stream.farmlb.test. 5 IN A 127.0.0.11", "stream.farmlb.test. 5 IN A 127.0.0.13"},
		},
		{
			name: "service AAAA", qname: testZone, qtype: dns.TypeAAAA, aa: true,
			answer: []string{"stream.farmlb.test. 5 IN AAAA fd00::13"},
		},
		{
			name: "SOA", qname: testZone, qtype: dns.TypeSOA, aa: true,
			answer: []string{soa},
		},
		{
			name: "NS with glue", qname: testZone, qtype: dns.TypeNS, aa: true,
			answer: []string{"stream.farmlb.test. 3600 IN NS ns1.stream.farmlb.test."},
			extra:  []string{"ns1.stream.farmlb.test. 3600 IN A 127.0.0.1"},
		},
		{
			name: "glue name itself", qname: "ns1." + testZone, qtype: dns.TypeA, aa: true,
			answer: []string{"ns1.stream.farmlb.test. 3600 IN A 127.0.0.1"},
		},
		{
			name: "a DOWN server's own name still resolves", qname: "serverB." + testZone, qtype: dns.TypeA, aa: true,
			answer: []string{"serverb.stream.farmlb.test. 60 IN A 127.0.0.12"},
		},
		{
			name: "a DRAINING server's own name", qname: "serverd." + testZone, qtype: dns.TypeA, aa: true,
			answer: []string{"serverd.stream.farmlb.test. 60 IN A 127.0.0.14"},
		},
		{
			name: "server AAAA", qname: "servern." + testZone, qtype: dns.TypeAAAA, aa: true,
			answer: []string{"servern.stream.farmlb.test. 60 IN AAAA fd00::13"},
		},
		{
			name: "_farm TXT: the whole list", qname: "_farm." + testZone, qtype: dns.TypeTXT, aa: true,
			answer: []string{`_farm.stream.farmlb.test. 5 IN TXT "# farm service=stream.farmlb.test" ` +
				`"http://serverA.stream.farmlb.test:8080 UP 2963 A addrs=127.0.0.11" ` +
				`"http://serverB.stream.farmlb.test:8080 DOWN 0 B addrs=127.0.0.12" ` +
				`"http://serverN.stream.farmlb.test UP 2979 A addrs=127.0.0.13,fd00::13" ` +
				`"https://serverD.stream.farmlb.test DRAINING 10 A addrs=127.0.0.14"`},
		},
		{
			name: "SRV: every UP server, weight by the patent's formula, addresses in additional", qname: "_farmlb._tcp." + testZone, qtype: dns.TypeSRV, aa: true,
			answer: []string{
				"_farmlb._tcp.stream.farmlb.test. 5 IN SRV 0 5013 8080 servera.stream.farmlb.test.",
				"_farmlb._tcp.stream.farmlb.test. 5 IN SRV 0 4987 80 servern.stream.farmlb.test.",
			},
			extra: []string{
				"servera.stream.farmlb.test. 60 IN A 127.0.0.11",
				"servern.stream.farmlb.test. 60 IN A 127.0.0.13",
				"servern.stream.farmlb.test. 60 IN AAAA fd00::13",
			},
		},
		{
			name: "NXDOMAIN carries the SOA with the negative TTL", qname: "nope." + testZone, qtype: dns.TypeA, aa: true,
			rcode: dns.RcodeNameError, ns: []string{negSOA},
		},
		{
			name: "NXDOMAIN below a server's name", qname: "x.serverA." + testZone, qtype: dns.TypeA, aa: true,
			rcode: dns.RcodeNameError, ns: []string{negSOA},
		},
		{
			name: "NODATA: a name without the type", qname: "serverB." + testZone, qtype: dns.TypeAAAA, aa: true,
			ns: []string{negSOA},
		},
		{
			name: "NODATA: TXT at the apex", qname: testZone, qtype: dns.TypeTXT, aa: true,
			ns: []string{negSOA},
		},
		{
			name: "NODATA: an empty non-terminal", qname: "_tcp." + testZone, qtype: dns.TypeSRV, aa: true,
			ns: []string{negSOA},
		},
		{
			name: "REFUSED outside the zone", qname: "example.com.", qtype: dns.TypeA,
			rcode: dns.RcodeRefused,
		},
		{
			name: "REFUSED for the parent zone", qname: "farmlb.test.", qtype: dns.TypeSOA,
			rcode: dns.RcodeRefused,
		},
		{
			name: "REFUSED for a zone transfer", qname: testZone, qtype: dns.TypeAXFR,
			rcode: dns.RcodeRefused,
		},
	}
	for _, network := range []string{"udp", "tcp"} {
		for _, tc := range tests {
			t.Run(network+"/"+tc.name, func(t *testing.T) {
				r := exchange(t, s, network, query(tc.qname, tc.qtype))
				if r.Rcode != tc.rcode {
					t.Fatalf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.rcode])
				}
				if r.Authoritative != tc.aa {
					t.Errorf("AA %v, want %v", r.Authoritative, tc.aa)
				}
				if !r.RecursionDesired || r.RecursionAvailable || r.Truncated {
					t.Errorf("flags RD %v RA %v TC %v, want RD only", r.RecursionDesired, r.RecursionAvailable, r.Truncated)
				}
				got, want := rrStrings(r.Answer), norm(t, tc.answer...)
				if tc.unordered {
					got, want = sorted(got), sorted(want)
				}
				if !slices.Equal(got, want) {
					t.Errorf("answer\n got %q\nwant %q", got, want)
				}
				if got, want := rrStrings(r.Ns), norm(t, tc.ns...); !slices.Equal(got, want) {
					t.Errorf("authority\n got %q\nwant %q", got, want)
				}
				if got, want := rrStrings(r.Extra), norm(t, tc.extra...); !slices.Equal(got, want) {
					t.Errorf("additional\n got %q\nwant %q", got, want)
				}
			})
		}
	}
}
