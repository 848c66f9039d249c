package dnsd

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// guardPair is two guards alike in everything — cookie secret, RRL hash key,
// clock — one answering by the usual path, the other by the slow path only,
// so that the fast path can be held to the slow one with cookies and RRL in
// play. Its RRL is tight (2 responses a second, slip 2, a small table) so
// that queries are limited, slipped and dropped as well as answered.
type guardPair struct {
	fast, slow *guard
	st         *stats
	gs         *guardStats
	tick       int
}

func newGuardPair() *guardPair {
	cfg := DefaultConfig()
	cfg.RRL = RRLConfig{Rate: 2, Slip: 2, IPv4Prefix: 24, IPv6Prefix: 56, TableSize: 64}
	cfg.Cookies.Secret = [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	p := &guardPair{fast: newGuard(cfg), slow: newGuard(cfg), st: new(stats)}
	p.slow.base = p.fast.base
	p.slow.rrl.table.k0, p.slow.rrl.table.k1 = p.fast.rrl.table.k0, p.fast.rrl.table.k1
	p.gs = p.fast.newStats()
	return p
}

// guardSources are the clients the pair's queries come from.
var guardSources = []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")}

// check answers q from each source six times by both guards, 100 ms
// apart, and checks that the replies are well formed and agree.
func (p *guardPair) check(z *zone, q []byte, udp bool) error {
	for _, src := range guardSources {
		for range 6 {
			p.tick++
			now := p.fast.base.Add(time.Duration(p.tick) * 100 * time.Millisecond)
			resetRotation(z)
			fast := p.fast.handle(z, nil, q, src, udp, now, p.st, p.gs, false)
			resetRotation(z)
			slow := p.slow.handle(z, nil, q, src, udp, now, p.st, p.gs, true)
			if (fast == nil) != (slow == nil) {
				return fmt.Errorf("from %v: fast path reply %v, slow path %v", src, fast != nil, slow != nil)
			}
			if fast == nil {
				continue
			}
			rs, err := checkReply(q, slow, udp)
			if err != nil {
				return fmt.Errorf("slow path with cookies and RRL: %w", err)
			}
			rf, err := checkReply(q, fast, udp)
			if err != nil {
				return fmt.Errorf("fast path with cookies and RRL: %w", err)
			}
			if !sameReply(rf, rs) {
				return fmt.Errorf("from %v, with cookies and RRL the paths disagree:\nfast:\n%v\nslow:\n%v", src, rf, rs)
			}
			if err := echoesDO(q, rf); err != nil {
				return err
			}
		}
	}
	return nil
}

// echoesDO checks that reply r to q, when it has an OPT record, copies the
// query's DO bit (RFC 3225), whatever the guard made of it (BADCOOKIE too).
func echoesDO(q []byte, r *dns.Msg) error {
	m := new(dns.Msg)
	if m.Unpack(q) != nil || m.IsEdns0() == nil || r.IsEdns0() == nil {
		return nil
	}
	if want, got := m.IsEdns0().Do(), r.IsEdns0().Do(); got != want {
		return fmt.Errorf("reply (rcode %s) with DO %v to a query with DO %v", dns.RcodeToString[r.Rcode], got, want)
	}
	return nil
}

// cookieSeeds are queries with cookies: a client cookie alone, one with a
// server cookie the pair made for the first source, one with a stale one,
// one too short; each without and with the DO bit.
func (p *guardPair) cookieSeeds() map[string]*dns.Msg {
	ks := p.fast.cookies.Load()
	client := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	now := uint32(p.fast.base.Unix())
	good := fmt.Sprintf("%x%x", client, ks.appendServerCookie(nil, client, now, guardSources[0]))
	stale := fmt.Sprintf("%x%x", client, ks.appendServerCookie(nil, client, now-7200, guardSources[0]))
	out := map[string]*dns.Msg{}
	for _, name := range []string{testZone, "_farm." + testZone, "nope." + testZone, "example.com."} {
		for c, v := range map[string]string{"client": "0102030405060708", "good": good, "stale": stale, "short": "0102"} {
			out[name+" cookie "+c] = withCookie(query(name, dns.TypeTXT), v)
			out[name+" DO cookie "+c] = withDO(withCookie(query(name, dns.TypeTXT), v))
		}
	}
	return out
}

// TestGuardedFastMatchesSlow holds the fast path to the slow one for the
// seed queries and the cookie queries, with cookies and RRL in play.
func TestGuardedFastMatchesSlow(t *testing.T) {
	p := newGuardPair()
	seeds := seedQueries()
	for k, m := range p.cookieSeeds() {
		seeds[k] = m
	}
	for zi, z := range testZones(t) {
		for name, m := range seeds {
			q, err := m.Pack()
			if err != nil {
				t.Fatal(err)
			}
			for _, udp := range []bool{true, false} {
				if err := p.check(z, q, udp); err != nil {
					t.Fatalf("zone%d/%s/udp=%v: %v", zi, name, udp, err)
				}
			}
		}
	}
	if p.gs.dropped.Load() == 0 || p.gs.slipped.Load() == 0 || p.gs.cookies[cookieValid].Load() == 0 || p.gs.cookies[cookieMalformed].Load() == 0 {
		t.Errorf("RRL and cookies not in play: dropped %d slipped %d valid cookies %d malformed %d",
			p.gs.dropped.Load(), p.gs.slipped.Load(), p.gs.cookies[cookieValid].Load(), p.gs.cookies[cookieMalformed].Load())
	}
}

// BenchmarkGuardedAnswer measures the usual queries through cookies and RRL
// (a bucket that never runs dry: the clock moves a second per query), per
// query: it must stay at 0 allocations.
func BenchmarkGuardedAnswer(b *testing.B) {
	z := testZones(b)[0]
	cfg := DefaultConfig()
	cfg.RRL, _ = RRLConfig{}.populate()
	g := newGuard(cfg)
	st, gs := new(stats), g.newStats()
	src := netip.MustParseAddr("192.0.2.1")
	ks := g.cookies.Load()
	client := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	now := time.Now() // moves on a second a query, across the cases, as a clock does
	serverCookie := func() *dns.Msg {
		sc := fmt.Sprintf("%x%x", client, ks.appendServerCookie(nil, client, uint32(now.Unix()), src))
		return withCookie(query(testZone, dns.TypeA), sc)
	}
	for _, tc := range []struct {
		name string
		m    func() *dns.Msg
	}{
		{"A", func() *dns.Msg { return query(testZone, dns.TypeA) }},
		{"TXT", func() *dns.Msg { return query("_farm."+testZone, dns.TypeTXT) }},
		{"NXDOMAIN", func() *dns.Msg { return query("nope."+testZone, dns.TypeA) }},
		{"A-client-cookie", func() *dns.Msg { return withCookie(query(testZone, dns.TypeA), "0102030405060708") }},
		{"A-server-cookie", serverCookie},
	} {
		b.Run(tc.name, func(b *testing.B) {
			q, _ := tc.m().Pack()
			buf := make([]byte, 0, 1232)
			b.ReportAllocs()
			for b.Loop() {
				if tc.name != "A-server-cookie" { // the cookie must stay young
					now = now.Add(time.Second)
				}
				if out := g.handle(z, buf, q, src, true, now, st, gs, false); out == nil {
					b.Fatal("no answer")
				}
			}
		})
	}
}

// countHandler counts the log records it is given, keeping the last.
type countHandler struct {
	n    int
	last slog.Record
}

func (h *countHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countHandler) Handle(_ context.Context, r slog.Record) error {
	h.n++
	h.last = r
	return nil
}
func (h *countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countHandler) WithGroup(string) slog.Handler      { return h }

// TestLimitingLogLine checks that the start of limiting is logged at most
// once a second, the next line saying how many starts went unlogged.
func TestLimitingLogLine(t *testing.T) {
	h := &countHandler{}
	cfg := DefaultConfig()
	cfg.Logger = slog.New(h)
	cfg.RRL = RRLConfig{Rate: 1, Slip: 2, IPv4Prefix: 24, IPv6Prefix: 56, TableSize: 64}
	g := newGuard(cfg)
	z := testZones(t)[0]
	st, gs := new(stats), g.newStats()
	q, _ := query(testZone, dns.TypeA).Pack()
	now := time.Unix(1_800_000_000, 0)
	for i := range 3 { // three prefixes start being limited in the same second
		src := netip.AddrFrom4([4]byte{192, 0, byte(i), 1})
		for range 3 {
			g.handle(z, nil, q, src, true, now, st, gs, false)
		}
	}
	if h.n != 1 {
		t.Fatalf("%d log lines in one second, want 1", h.n)
	}
	src := netip.AddrFrom4([4]byte{192, 0, 9, 1})
	for range 3 {
		g.handle(z, nil, q, src, true, now.Add(time.Second), st, gs, false)
	}
	if h.n != 2 {
		t.Fatalf("%d log lines after the next second, want 2", h.n)
	}
	var others int64 = -1
	h.last.Attrs(func(a slog.Attr) bool {
		if a.Key == "others_since_last_line" {
			others = a.Value.Int64()
		}
		return true
	})
	if others != 2 {
		t.Errorf("others_since_last_line %d, want 2", others)
	}
}
