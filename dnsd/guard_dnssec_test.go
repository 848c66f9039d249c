package dnsd

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// The guard (cookies and RRL, guard.go) around the signed answers of a
// DNSSEC zone (dnssec.go, denial.go): what a query with the DO bit gets.

// signedTestZone is the small farm signed (testZones' fourth zone).
func signedTestZone(t testing.TB) *zone {
	t.Helper()
	z := testZones(t)[3]
	if z.signer == nil {
		t.Fatal("testZones()[3] is not signed")
	}
	return z
}

// withDO sets the DO bit of m, adding an OPT record if it has none.
func withDO(m *dns.Msg) *dns.Msg {
	if o := m.IsEdns0(); o != nil {
		o.SetDo()
		return m
	}
	m.SetEdns0(1232, true)
	return m
}

// tightGuard is a guard whose RRL lets one response a second through per
// bucket and slips every slip-th of the others.
func tightGuard(slip int) *guard {
	cfg := DefaultConfig()
	cfg.RRL = RRLConfig{Rate: 1, Slip: slip, IPv4Prefix: 24, IPv6Prefix: 56, TableSize: 64}
	cfg.Cookies.Secret = [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	return newGuard(cfg)
}

// hasType reports whether rrs hold a record of type t.
func hasType(rrs []dns.RR, t uint16) bool {
	for _, rr := range rrs {
		if rr.Header().Rrtype == t {
			return true
		}
	}
	return false
}

// TestGuardSignedAnswers: a query with DO and a client cookie gets the
// signed answer with the cookies in its OPT record, DO echoed; over the
// rate, signed answers are limited like any other: slipped as the question
// alone with TC (no records, no signatures), or, with a cookie, as BADCOOKIE
// with a fresh server cookie and DO still echoed (RFC 3225: the DO bit of
// the query is copied in the response).
func TestGuardSignedAnswers(t *testing.T) {
	z := signedTestZone(t)
	src := netip.MustParseAddr("192.0.2.1")
	const client = "0102030405060708"
	for _, tc := range []struct {
		name  string
		qname string
		qtype uint16
	}{
		{"A", testZone, dns.TypeA},
		{"TXT", "_farm." + testZone, dns.TypeTXT},
		{"NODATA", testZone, dns.TypeMX},
		{"no such name", "nope." + testZone, dns.TypeA},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, slowOnly := range []bool{false, true} {
				g := tightGuard(1)
				st, gs := new(stats), g.newStats()
				now := g.base.Add(time.Hour)
				ask := func(m *dns.Msg) *dns.Msg {
					q, err := m.Pack()
					if err != nil {
						t.Fatal(err)
					}
					out := g.handle(z, nil, q, src, true, now, st, gs, slowOnly)
					if out == nil {
						t.Fatalf("slow=%v: no reply", slowOnly)
					}
					r, err := checkReply(q, out, true)
					if err != nil {
						t.Fatalf("slow=%v: %v", slowOnly, err)
					}
					return r
				}
				// The first passes: signed, with the cookies.
				r := ask(withDO(withCookie(query(tc.qname, tc.qtype), client)))
				if o := r.IsEdns0(); o == nil || !o.Do() {
					t.Fatalf("slow=%v: signed answer %v without DO echoed", slowOnly, r)
				}
				if !hasType(append(r.Answer, r.Ns...), dns.TypeRRSIG) {
					t.Errorf("slow=%v: answer to a DO query without signatures:\n%v", slowOnly, r)
				}
				if c := replyCookie(r); len(c) != 48 || c[:16] != client {
					t.Errorf("slow=%v: signed answer with cookie %q, want the client's and a server cookie", slowOnly, c)
				}
				// Over the rate (1/s, slip 1): with a client cookie,
				// BADCOOKIE with DO echoed and a server cookie.
				r = ask(withDO(withCookie(query(tc.qname, tc.qtype), client)))
				if r.Rcode != dns.RcodeBadCookie || len(r.Answer)+len(r.Ns) != 0 {
					t.Fatalf("slow=%v: over the rate with a cookie: %v, want BADCOOKIE and no records", slowOnly, r)
				}
				if o := r.IsEdns0(); o == nil || !o.Do() || o.UDPSize() != z.udpSize {
					t.Errorf("slow=%v: BADCOOKIE to a DO query: OPT %v, want DO echoed and the server's UDP size %d", slowOnly, r.IsEdns0(), z.udpSize)
				}
				if c := replyCookie(r); len(c) != 48 || c[:16] != client {
					t.Errorf("slow=%v: BADCOOKIE with cookie %q", slowOnly, c)
				}
				// Without a cookie: the question alone, TC, nothing signed.
				r = ask(withDO(query(tc.qname, tc.qtype)))
				if !r.Truncated || len(r.Answer)+len(r.Ns)+len(r.Extra) != 0 {
					t.Errorf("slow=%v: over the rate without a cookie: %v, want TC and no records", slowOnly, r)
				}
				if gs.slipped.Load() != 2 {
					t.Errorf("slow=%v: %d slipped, want 2", slowOnly, gs.slipped.Load())
				}
			}
		})
	}
}

// TestRRLCompactDenial: with DO, a name that does not exist is answered
// NOERROR with compact denial (denial.go), not NXDOMAIN; RRL must still
// count those answers as NXDOMAIN, one bucket for the zone, or a flood of
// random names with DO from one prefix is never limited (each name would
// have a NODATA bucket of its own) and reflects signed denials, several
// times the query's size, at full rate.
func TestRRLCompactDenial(t *testing.T) {
	z := signedTestZone(t)
	src := netip.MustParseAddr("198.51.100.7")
	for _, do := range []bool{false, true} {
		for _, slowOnly := range []bool{false, true} {
			g := tightGuard(-1)
			st, gs := new(stats), g.newStats()
			now := g.base.Add(time.Hour)
			answered := 0
			for i := range 20 {
				m := query(fmt.Sprintf("x%d.%s", i, testZone), dns.TypeA)
				if do {
					withDO(m)
				}
				q, _ := m.Pack()
				if out := g.handle(z, nil, q, src, true, now, st, gs, slowOnly); out != nil {
					answered++
				}
			}
			if answered != 1 {
				t.Errorf("DO=%v slow=%v: 20 names that do not exist at once at 1/s: %d answered, want 1 (one NXDOMAIN bucket)", do, slowOnly, answered)
			}
		}
	}
	// NODATA stays per name, with DO as without.
	g := tightGuard(-1)
	st, gs := new(stats), g.newStats()
	now := g.base.Add(time.Hour)
	for _, name := range []string{testZone, "_farm." + testZone} {
		q, _ := withDO(query(name, dns.TypeMX)).Pack()
		if g.handle(z, nil, q, src, true, now, st, gs, false) == nil {
			t.Errorf("NODATA at %s limited by another name's", name)
		}
	}
}

// BenchmarkGuardedAnswerDO measures the usual queries with the DO bit
// against a signed zone through cookies and RRL (the bucket never runs dry:
// the clock moves a second a query), as a validating resolver's queries
// take them: the signed answers of BenchmarkAnswerDO inside the guard of
// BenchmarkGuardedAnswer. It must stay at 0 allocations and on the fast
// path.
func BenchmarkGuardedAnswerDO(b *testing.B) {
	z := signedTestZone(b)
	cfg := DefaultConfig()
	cfg.RRL, _ = RRLConfig{}.populate()
	g := newGuard(cfg)
	st, gs := new(stats), g.newStats()
	src := netip.MustParseAddr("192.0.2.1")
	now := time.Now()
	for _, tc := range []struct {
		name string
		m    *dns.Msg
	}{
		{"A", withDO(query(testZone, dns.TypeA))},
		{"TXT", withDO(query("_farm."+testZone, dns.TypeTXT))},
		{"NODATA", withDO(query(testZone, dns.TypeMX))},
		{"no-such-name-asked-before", withDO(query("nope."+testZone, dns.TypeA))},
		{"A-client-cookie", withDO(withCookie(query(testZone, dns.TypeA), "0102030405060708"))},
	} {
		b.Run(tc.name, func(b *testing.B) {
			q, _ := tc.m.Pack()
			buf := make([]byte, 0, 1232)
			g.handle(z, buf, q, src, true, now, st, gs, false) // a denial is signed the first time
			slow := st.slow.Load()
			b.ReportAllocs()
			for b.Loop() {
				now = now.Add(time.Second)
				if out := g.handle(z, buf, q, src, true, now, st, gs, false); out == nil || out[7] == 0 && out[9] == 0 {
					b.Fatal("no answer")
				}
			}
			if st.slow.Load() != slow {
				b.Fatal("the slow path answered")
			}
		})
	}
}
