package dnsd

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

func mustSecret(t testing.TB, s string) [16]byte {
	t.Helper()
	k, err := ParseCookieSecret(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestRFC9018Vectors checks server cookies against the examples of RFC 9018
// appendix A, so that dnsd's cookies interoperate with BIND's, Knot's and
// NSD's made with the same secret.
func TestRFC9018Vectors(t *testing.T) {
	for _, tc := range []struct {
		client, ip, secret string
		ts                 uint32
		want               string
	}{
		{"2464c4abcf10c957", "198.51.100.100", "e5e973e5a6b2a43f48e7dc849e37bfcf", 1559731985, "010000005cf79f111f8130c3eee29480"},
		{"fc93fc62807ddb86", "203.0.113.203", "e5e973e5a6b2a43f48e7dc849e37bfcf", 1559734700, "010000005cf7a9ac f73a7810aca2381e"},
		{"22681ab97d52c298", "2001:db8:220:1:59de:d0f4:8769:82b8", "dd3bdf9344b678b185a6f5cb60fca715", 1559741817, "010000005cf7c57926556bd0934c72f8"},
	} {
		client, _ := hex.DecodeString(tc.client)
		ks := newCookieKeys(CookieConfig{Secret: mustSecret(t, tc.secret)})
		src := netip.MustParseAddr(tc.ip)
		got := ks.appendServerCookie(nil, client, tc.ts, src)
		want, _ := hex.DecodeString(strings.ReplaceAll(tc.want, " ", ""))
		if !bytes.Equal(got, want) {
			t.Errorf("client %s from %s at %d: server cookie %x, want %x", tc.client, tc.ip, tc.ts, got, want)
		}
		if valid, _ := ks.check(want, client, tc.ts+10, src); !valid {
			t.Errorf("the RFC's cookie %x is not valid", want)
		}
	}
}

// TestCookieCheck checks what makes a server cookie valid: the secret (or a
// previous one), the client cookie, the address, its age.
func TestCookieCheck(t *testing.T) {
	oldSecret, newSecret := mustSecret(t, "e5e973e5a6b2a43f48e7dc849e37bfcf"), mustSecret(t, "dd3bdf9344b678b185a6f5cb60fca715")
	old := newCookieKeys(CookieConfig{Secret: oldSecret})
	rotated := newCookieKeys(CookieConfig{Secret: newSecret, Previous: [][16]byte{oldSecret}})
	other := newCookieKeys(CookieConfig{Secret: newSecret})
	client := []byte("12345678")
	src := netip.MustParseAddr("192.0.2.1")
	const now = 1_800_000_000
	sc := old.appendServerCookie(nil, client, now, src)
	for _, tc := range []struct {
		name        string
		ks          *cookieKeys
		client      []byte
		src         string
		at          uint32
		valid, keep bool
	}{
		{"same server", old, client, "192.0.2.1", now, true, true},
		{"half an hour on: renewed", old, client, "192.0.2.1", now + 1801, true, false},
		{"an hour on: expired", old, client, "192.0.2.1", now + 3601, false, false},
		{"from 5 minutes ahead", old, client, "192.0.2.1", now - 300, true, true},
		{"from further ahead", old, client, "192.0.2.1", now - 301, false, false},
		{"other address", old, client, "192.0.2.2", now, false, false},
		{"other client cookie", old, []byte("87654321"), "192.0.2.1", now, false, false},
		{"rotated: the old secret still accepted, renewed", rotated, client, "192.0.2.1", now, true, false},
		{"other secret", other, client, "192.0.2.1", now, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			valid, keep := tc.ks.check(sc, tc.client, tc.at, netip.MustParseAddr(tc.src))
			if valid != tc.valid || keep != tc.keep {
				t.Errorf("valid %v keep %v, want %v %v", valid, keep, tc.valid, tc.keep)
			}
		})
	}
}

// withCookie returns m with EDNS0 and a COOKIE option of hex value c.
func withCookie(m *dns.Msg, c string) *dns.Msg {
	m.SetEdns0(1232, false)
	m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: c})
	return m
}

// replyCookie returns the COOKIE option of r in hex, or "".
func replyCookie(r *dns.Msg) string {
	if o := r.IsEdns0(); o != nil {
		for _, e := range o.Option {
			if c, ok := e.(*dns.EDNS0_COOKIE); ok {
				return c.Cookie
			}
		}
	}
	return ""
}

// TestCookiesOnTheWire asks with a client cookie, then with the server
// cookie it got, over UDP and TCP; a farm's other server with the same
// secret accepts it; a malformed option is FORMERR; and a query with a valid
// cookie is never rate limited.
func TestCookiesOnTheWire(t *testing.T) {
	secret := mustSecret(t, "e5e973e5a6b2a43f48e7dc849e37bfcf")
	cfg := testConfig(newTestSource(testList(t)))
	cfg.Cookies.Secret = secret
	cfg.RRL.Rate = 5
	s1 := startServer(t, cfg)
	s2 := startServer(t, cfg)
	const client = "0102030405060708"
	for _, network := range []string{"udp", "tcp"} {
		r := exchange(t, s1, network, withCookie(query(testZone, dns.TypeA), client))
		c := replyCookie(r)
		if len(c) != 48 || !strings.HasPrefix(c, client) || c[16:18] != "01" || len(r.Answer) == 0 {
			t.Fatalf("%s: reply %v with cookie %q: want the answer, the client cookie and a version 1 server cookie", network, r, c)
		}
		r = exchange(t, s1, network, withCookie(query(testZone, dns.TypeA), c))
		if got := replyCookie(r); got != c {
			t.Errorf("%s: second query: cookie %q, want the same %q back", network, got, c)
		}
		r = exchange(t, s2, network, withCookie(query(testZone, dns.TypeA), c))
		if got := replyCookie(r); got != c || len(r.Answer) == 0 {
			t.Errorf("%s: the farm's other server: cookie %q, want %q kept (valid there too)", network, got, c)
		}
	}
	// A valid server cookie lifts RRL: 100 queries at 5/s all answered.
	c := replyCookie(exchange(t, s1, "udp", withCookie(query("_farm."+testZone, dns.TypeTXT), client)))
	whole, truncated, _, _ := udpBurst(t, s1, "127.0.0.1", withCookie(query("_farm."+testZone, dns.TypeTXT), c), 100)
	if whole != 100 {
		t.Errorf("with a valid cookie: %d of 100 answered whole (%d truncated)", whole, truncated)
	}
	// Without it, RRL limits, and the slipped replies are BADCOOKIE with a
	// fresh cookie to retry with.
	_, _, replies, span := udpBurst(t, s1, "127.0.0.3", withCookie(query("_farm."+testZone, dns.TypeTXT), client), 100)
	bad := 0
	for _, r := range replies {
		if r.Rcode == dns.RcodeBadCookie {
			bad++
			if c := replyCookie(r); len(c) != 48 || len(r.Answer) != 0 {
				t.Fatalf("BADCOOKIE %v without a server cookie", r)
			}
		}
	}
	// 5 at once and 5 a second for as long as the burst lasted pass; half
	// of the others are slipped as BADCOOKIE.
	passed := len(replies) - bad
	if most := 5 + int(5*span.Seconds()) + 1; passed < 5 || passed > most || bad < (100-passed)/2-1 || bad > (100-passed)/2+1 {
		t.Errorf("client cookie only, at 5/s in %v: %d answered, %d BADCOOKIE; want 5..%d answered and half of the rest BADCOOKIE", span, passed, bad, most)
	}
	for _, bogus := range []string{"0102030405", "010203040506070801", strings.Repeat("ab", 41)} {
		r := exchange(t, s1, "tcp", withCookie(query(testZone, dns.TypeA), bogus))
		if r.Rcode != dns.RcodeFormatError {
			t.Errorf("cookie of %d bytes: rcode %s, want FORMERR", len(bogus)/2, dns.RcodeToString[r.Rcode])
		}
	}
}

// TestCookiesOff checks that with cookies off a COOKIE option is ignored.
func TestCookiesOff(t *testing.T) {
	cfg := testConfig(newTestSource(testList(t)))
	cfg.Cookies.Off = true
	s := startServer(t, cfg)
	r := exchange(t, s, "udp", withCookie(query(testZone, dns.TypeA), "0102030405060708"))
	if c := replyCookie(r); c != "" || len(r.Answer) == 0 {
		t.Errorf("cookies off: reply %v with cookie %q", r, c)
	}
}

// TestDigCookie runs dig +cookie twice against dnsd, as an operator checks
// a server: the first reply shows a server cookie, the second query, sending
// it back, is "good".
func TestDigCookie(t *testing.T) {
	dig, err := exec.LookPath("dig")
	if err != nil {
		t.Skip("dig not installed (Debian package dnsutils; make deps installs it)")
	}
	s := startServer(t, testConfig(newTestSource(testList(t))))
	host, port, _ := strings.Cut(s.Addr().String(), ":")
	run := func(args ...string) string {
		out, err := exec.Command(dig, append([]string{"@" + host, "-p", port, "+time=2", "+tries=1", testZone, "A"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("dig: %v\n%s", err, out)
		}
		return string(out)
	}
	out := run("+cookie")
	m := regexp.MustCompile(`; COOKIE: ([0-9a-f]{48})`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("dig +cookie shows no server cookie:\n%s", out)
	}
	out = run("+cookie=" + m[1])
	if !strings.Contains(out, "; COOKIE: "+m[1]+" (good)") {
		t.Fatalf("second query with the cookie is not good:\n%s", out)
	}
	t.Logf("dig: %s", regexp.MustCompile(`; COOKIE: .*`).FindString(out))
}

// FuzzCookie feeds any bytes to the COOKIE option decoder: it must not
// panic, what it finds must lie in the query with the lengths RFC 7873
// allows, and an option it finds in a query miekg/dns packs must be the one
// packed.
func FuzzCookie(f *testing.F) {
	for _, c := range []string{"0102030405060708", "0102030405060708" + "010000005cf79f111f8130c3eee29480", "01020304", "010203040506070809", strings.Repeat("ab", 40)} {
		q, _ := withCookie(query(testZone, dns.TypeA), c).Pack()
		f.Add(q, []byte(c))
	}
	f.Add([]byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 1, 0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 4, 0, 10, 0, 0}, []byte{})
	f.Fuzz(func(t *testing.T, q, cookie []byte) {
		c := parseCookie(q)
		if c.present && !c.malformed {
			if len(c.client) != clientCookieLen || c.server != nil && (len(c.server) < minServerCookie || len(c.server) > maxServerCookie) {
				t.Fatalf("client %x server %x: lengths RFC 7873 forbids", c.client, c.server)
			}
			if !bytes.Contains(q, c.client) || !bytes.Contains(q, c.server) {
				t.Fatal("cookie not from the query")
			}
		}
		if (c.client != nil || c.server != nil) && !c.present {
			t.Fatal("cookie bytes without an option")
		}
		// Round trip: a query with this cookie option, packed by miekg/dns.
		m := withCookie(query(testZone, dns.TypeA), hex.EncodeToString(cookie))
		do := len(cookie)%2 == 1
		if do {
			m.IsEdns0().SetDo()
		}
		packed, err := m.Pack()
		if err != nil {
			return
		}
		c = parseCookie(packed)
		if !c.present || c.do != do {
			t.Fatalf("packed query % x: cookie found %v, DO %v (want %v)", packed, c.present, c.do, do)
		}
		n := len(cookie)
		if wantBad := n < 8 || n > 8 && n < 16 || n > 40; c.malformed != wantBad {
			t.Fatalf("cookie of %d bytes: malformed %v, want %v", n, c.malformed, wantBad)
		}
		if !c.malformed && !bytes.Equal(append(append([]byte{}, c.client...), c.server...), cookie) {
			t.Fatalf("cookie %x read back as %x|%x", cookie, c.client, c.server)
		}
	})
}

// TestCookieRotation rotates a running server's secret (as SIGHUP does): a
// cookie made with the old secret is still accepted while it is a previous
// one, and answered with a cookie made with the new secret.
func TestCookieRotation(t *testing.T) {
	oldSecret, newSecret := mustSecret(t, "e5e973e5a6b2a43f48e7dc849e37bfcf"), mustSecret(t, "dd3bdf9344b678b185a6f5cb60fca715")
	cfg := testConfig(newTestSource(testList(t)))
	cfg.Cookies.Secret = oldSecret
	s := startServer(t, cfg)
	const client = "0102030405060708"
	old := replyCookie(exchange(t, s, "udp", withCookie(query(testZone, dns.TypeA), client)))
	s.SetCookieSecrets(newSecret, [][16]byte{oldSecret})
	r := exchange(t, s, "udp", withCookie(query(testZone, dns.TypeA), old))
	renewed := replyCookie(r)
	if renewed == old || len(renewed) != 48 || !strings.HasPrefix(renewed, client) {
		t.Fatalf("after rotation: cookie %q for %q, want a new one made with the new secret", renewed, old)
	}
	valid := func() uint64 {
		n := uint64(0)
		s.guard.mu.Lock()
		defer s.guard.mu.Unlock()
		for _, st := range s.guard.stats {
			n += st.cookies[cookieValid].Load()
		}
		return n
	}
	if valid() != 1 {
		t.Errorf("the old cookie was not counted valid after the rotation (valid %d)", valid())
	}
	// Once the old secret is dropped, its cookies are not valid any more.
	s.SetCookieSecrets(newSecret, nil)
	exchange(t, s, "udp", withCookie(query(testZone, dns.TypeA), old))
	if valid() != 1 {
		t.Errorf("the old cookie still valid after its secret went (valid %d)", valid())
	}
	exchange(t, s, "udp", withCookie(query(testZone, dns.TypeA), renewed))
	if valid() != 2 {
		t.Errorf("the renewed cookie is not valid (valid %d)", valid())
	}
}
