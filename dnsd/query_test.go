package dnsd

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/farmlb/farmlb/farm"
)

// testZones builds the zones the query-path tests and the fuzz target use: the
// small test farm, a farm of 100 servers and an empty farm.
func testZones(t testing.TB) []*zone {
	t.Helper()
	cfg := testConfig(newTestSource(testList(t)))
	zc, err := cfg.Zone.populate(cfg.Listen)
	if err != nil {
		t.Fatal(err)
	}
	var zs []*zone
	for _, l := range []*farm.List{testList(t), bigList(t, 100), {Servers: []farm.Server{}}} {
		z, err := buildZone(zc, l, 1, 1232)
		if err != nil {
			t.Fatal(err)
		}
		zs = append(zs, z)
	}
	// The same farms signed: a combined signing key (ECDSA), and a KSK
	// and a ZSK (Ed25519).
	for i, l := range []*farm.List{testList(t), bigList(t, 100)} {
		z, err := buildSignedZone(zc, l, 1, 1232, newSigner(testKeys(t, zc.Origin, i == 1)), testNow)
		if err != nil {
			t.Fatal(err)
		}
		zs = append(zs, z)
	}
	return zs
}

// resetRotation puts every rotating set back to its first record, so that
// two answers to one query can be compared.
func resetRotation(z *zone) {
	for _, n := range z.nodes {
		for _, s := range n.sets {
			if s.rot != nil {
				s.rot.Store(0)
			}
		}
	}
}

// checkReply checks that out is a well-formed reply to q: it parses, is a
// response with q's ID, its counts match its sections, and over UDP it fits
// the largest buffer the server ever fills.
func checkReply(q, out []byte, udp bool) (*dns.Msg, error) {
	r := new(dns.Msg)
	if err := r.Unpack(out); err != nil {
		return nil, fmt.Errorf("reply does not parse: %v", err)
	}
	if !r.Response || r.Id != binary.BigEndian.Uint16(q) {
		return nil, fmt.Errorf("reply QR %v ID %d, want a response with ID %d", r.Response, r.Id, binary.BigEndian.Uint16(q))
	}
	counts := func(i int) int { return int(binary.BigEndian.Uint16(out[4+2*i:])) }
	if counts(0) != len(r.Question) || counts(1) != len(r.Answer) || counts(2) != len(r.Ns) || counts(3) != len(r.Extra) {
		return nil, fmt.Errorf("reply counts %d/%d/%d/%d do not match its records", counts(0), counts(1), counts(2), counts(3))
	}
	if udp && len(out) > 1232 {
		return nil, fmt.Errorf("UDP reply of %d bytes", len(out))
	}
	if r.IsEdns0() == nil && udp && len(out) > 512 {
		// Only a query with EDNS0 may get more than 512 bytes.
		qm := new(dns.Msg)
		if qm.Unpack(q) != nil || qm.IsEdns0() == nil {
			return nil, fmt.Errorf("UDP reply of %d bytes without EDNS0", len(out))
		}
	}
	return r, nil
}

// sameReply compares two replies as a client reads them, ignoring the case
// of names (the fast path writes some names in lower case where the slow path
// follows the question's case).
func sameReply(a, b *dns.Msg) bool {
	return strings.EqualFold(a.String(), b.String())
}

// fastMatchesSlow answers q by both paths and checks that both replies are
// well formed and, when the fast path answers, that they agree.
func fastMatchesSlow(z *zone, q []byte, udp bool) error {
	resetRotation(z)
	fast, _, ok := z.fast(nil, q, udp)
	resetRotation(z)
	slow, res := z.slow(nil, q, udp)
	if slow == nil {
		if ok {
			return fmt.Errorf("the fast path answers a query the slow path drops")
		}
		if res.rcode != -1 {
			return fmt.Errorf("no reply but rcode %d", res.rcode)
		}
		return nil
	}
	rs, err := checkReply(q, slow, udp)
	if err != nil {
		return fmt.Errorf("slow path: %w", err)
	}
	if !ok {
		return nil
	}
	rf, err := checkReply(q, fast, udp)
	if err != nil {
		return fmt.Errorf("fast path: %w", err)
	}
	if !sameReply(rf, rs) {
		return fmt.Errorf("the paths disagree:\nfast:\n%v\nslow:\n%v", rf, rs)
	}
	return nil
}

// seedQueries are real queries: every name and type of the test zone, in
// both cases, with and without EDNS0.
func seedQueries() map[string]*dns.Msg {
	out := map[string]*dns.Msg{}
	names := []string{testZone, "StReAm.FarmLB.TEST.", "_farm." + testZone, "_farmlb._tcp." + testZone, "_tcp." + testZone,
		"serverA." + testZone, "SERVERN." + testZone, "ns1." + testZone, "nope." + testZone, "a.b.c." + testZone, "example.com.", "test.", "."}
	types := []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeTXT, dns.TypeSRV, dns.TypeNS, dns.TypeSOA, dns.TypeANY, dns.TypeMX, dns.TypeAXFR, dns.TypeHTTPS, dns.TypeDNSKEY, dns.TypeNSEC, dns.TypeRRSIG}
	for _, n := range names {
		for _, ty := range types {
			for _, edns := range []int{-1, 0, 1} {
				m := query(n, ty)
				m.Id = 0x1234
				if edns >= 0 {
					m.SetEdns0(1232, edns == 1)
				}
				out[fmt.Sprintf("%s %s edns%d", n, dns.TypeToString[ty], edns)] = m
			}
		}
	}
	bad := query(testZone, dns.TypeA)
	bad.SetEdns0(1232, false)
	bad.IsEdns0().SetVersion(1)
	out["BADVERS"] = bad
	small := query("_farm."+testZone, dns.TypeTXT)
	small.SetEdns0(600, false)
	out["TXT with a 600-byte buffer"] = small
	cookie := query(testZone, dns.TypeA)
	cookie.SetEdns0(1232, false)
	cookie.IsEdns0().Option = append(cookie.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"})
	out["EDNS0 with a cookie option"] = cookie
	ecs := query(testZone, dns.TypeA)
	ecs.SetEdns0(1232, false)
	ecs.IsEdns0().Option = append(ecs.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: []byte{192, 0, 2, 0}})
	out["EDNS0 with a client subnet"] = ecs
	ch := query(testZone, dns.TypeTXT)
	ch.Question[0].Qclass = dns.ClassCHAOS
	out["class CH"] = ch
	notify := query(testZone, dns.TypeSOA)
	notify.Opcode = dns.OpcodeNotify
	out["NOTIFY"] = notify
	cd := query(testZone, dns.TypeA)
	cd.CheckingDisabled = true
	cd.RecursionDesired = false
	out["CD set, RD clear"] = cd
	return out
}

// TestFastMatchesSlow holds the precomputed answers to the general path's,
// for every name and type of two zones, over UDP and TCP.
func TestFastMatchesSlow(t *testing.T) {
	for zi, z := range testZones(t) {
		for name, m := range seedQueries() {
			q, err := m.Pack()
			if err != nil {
				t.Fatal(err)
			}
			for _, udp := range []bool{true, false} {
				t.Run(fmt.Sprintf("zone%d/%s/udp=%v", zi, name, udp), func(t *testing.T) {
					if err := fastMatchesSlow(z, q, udp); err != nil {
						t.Fatal(err)
					}
				})
			}
		}
	}
}

// TestFastPathTakesUsualQueries checks that the usual queries do not fall to
// the slow path (which would cost the performance the fast path exists for).
func TestFastPathTakesUsualQueries(t *testing.T) {
	z := testZones(t)[0]
	tests := []struct {
		name  string
		qname string
		qtype uint16
		edns  bool
	}{
		{"service A", testZone, dns.TypeA, false},
		{"service A with a cookie, as dig and BIND send it", testZone, dns.TypeA, true},
		{"service A with EDNS0", "STREAM.farmlb.test.", dns.TypeA, true},
		{"_farm TXT", "_farm." + testZone, dns.TypeTXT, false},
		{"SRV", "_farmlb._tcp." + testZone, dns.TypeSRV, true},
		{"NXDOMAIN", "nope." + testZone, dns.TypeA, false},
		{"NODATA", "serverB." + testZone, dns.TypeMX, true},
		{"REFUSED", "example.com.", dns.TypeA, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := query(tc.qname, tc.qtype)
			if tc.edns {
				m.SetEdns0(1232, false)
			}
			if strings.Contains(tc.name, "cookie") {
				m.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "24a5ac7e7f1b2c3d"}}
			}
			q, _ := m.Pack()
			if _, _, ok := z.fast(nil, q, true); !ok {
				t.Error("went to the slow path")
			}
		})
	}
}

// FuzzQuery feeds any bytes to the query path: it must not panic, must reply
// with a well-formed message or not at all, and the fast path must agree with
// the slow one, alone and with cookies and RRL in play (guardPair).
func FuzzQuery(f *testing.F) {
	for _, m := range seedQueries() {
		q, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(q, true)
		f.Add(q, false)
	}
	f.Add([]byte{}, true)
	f.Add([]byte{0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 12, 0, 1, 0, 1}, true)
	guards := newGuardPair()
	for _, m := range guards.cookieSeeds() {
		q, _ := m.Pack()
		f.Add(q, true)
	}
	zs := testZones(f)
	f.Fuzz(func(t *testing.T, q []byte, udp bool) {
		for _, z := range zs {
			if err := fastMatchesSlow(z, q, udp); err != nil {
				t.Fatalf("query % x: %v", q, err)
			}
			if err := guards.check(z, q, udp); err != nil {
				t.Fatalf("query % x: %v", q, err)
			}
			out, _ := z.answer(nil, q, udp)
			if out != nil {
				if _, err := checkReply(q, out, udp); err != nil {
					t.Fatalf("query % x: %v", q, err)
				}
			}
		}
	})
}

// BenchmarkAnswer measures the query path alone (no sockets), per query.
func BenchmarkAnswer(b *testing.B) {
	z := testZones(b)[0]
	for _, tc := range []struct {
		name  string
		qname string
		qtype uint16
	}{
		{"A", testZone, dns.TypeA},
		{"TXT", "_farm." + testZone, dns.TypeTXT},
		{"NXDOMAIN", "nope." + testZone, dns.TypeA},
	} {
		b.Run(tc.name, func(b *testing.B) {
			q, _ := query(tc.qname, tc.qtype).Pack()
			buf := make([]byte, 0, 1232)
			b.ReportAllocs()
			for b.Loop() {
				out, _ := z.answer(buf, q, true)
				if out == nil {
					b.Fatal("no answer")
				}
			}
		})
	}
	b.Run("slow-path-A", func(b *testing.B) {
		q, _ := query(testZone, dns.TypeA).Pack()
		buf := make([]byte, 0, 1232)
		b.ReportAllocs()
		for b.Loop() {
			z.slow(buf, q, true)
		}
	})
}

// TestLargeFarmLimits builds a farm larger than one answer may hold: the
// answers are cut to their bounds, still fit a TCP message, and the build
// says what it left out.
func TestLargeFarmLimits(t *testing.T) {
	l := bigList(t, 1000)
	cfg := testConfig(newTestSource(l))
	zc, err := cfg.Zone.populate(cfg.Listen)
	if err != nil {
		t.Fatal(err)
	}
	z, err := buildZone(zc, l, 1, 1232)
	if err != nil {
		t.Fatal(err)
	}
	notes := strings.Join(z.notes, "\n")
	for _, want := range []string{"addresses for the service name", "SRV lists the first", "_farm TXT holds the first"} {
		if !strings.Contains(notes, want) {
			t.Errorf("no note %q in:\n%s", want, notes)
		}
	}
	for _, tc := range []struct {
		name  string
		qtype uint16
		max   int
	}{
		{testZone, dns.TypeA, maxAddrRecords},
		{"_farmlb._tcp." + testZone, dns.TypeSRV, maxSRVRecords},
		{"_farm." + testZone, dns.TypeTXT, 1},
	} {
		q, _ := query(tc.name, tc.qtype).Pack()
		out, _ := z.answer(nil, q, false)
		r, err := checkReply(q, out, false)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if len(r.Answer) == 0 || len(r.Answer) > tc.max || len(out) > dns.MaxMsgSize {
			t.Errorf("%s: %d records in %d bytes, want 1..%d within 64 KiB", tc.name, len(r.Answer), len(out), tc.max)
		}
	}
}

// TestEmptyFarm checks the answers for a farm with no servers: NODATA for the
// service name and a _farm TXT that reads back as an empty list.
func TestEmptyFarm(t *testing.T) {
	z := testZones(t)[2]
	q, _ := query(testZone, dns.TypeA).Pack()
	out, _ := z.answer(nil, q, true)
	r, err := checkReply(q, out, true)
	if err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 || len(r.Ns) != 1 {
		t.Fatalf("service A: %v %v, want NODATA with the SOA", r, err)
	}
	q, _ = query("_farm."+testZone, dns.TypeTXT).Pack()
	out, _ = z.answer(nil, q, true)
	r, err = checkReply(q, out, true)
	if err != nil || len(r.Answer) != 1 {
		t.Fatalf("_farm: %v %v", r, err)
	}
	l, err := farm.ParseTXT(r.Answer[0].(*dns.TXT).Txt)
	if err != nil || len(l.Servers) != 0 {
		t.Fatalf("_farm reads back as %v, %v; want an empty list", l, err)
	}
}
