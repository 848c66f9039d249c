package dnsd

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestBucketTable checks the token bucket: a second's worth of burst, a
// steady refill, and the start of a spell of limiting said once.
func TestBucketTable(t *testing.T) {
	tb := newBucketTable(64, 10)
	key := tb.hash([]byte("k"))
	for i := range 10 {
		if ok, _, _ := tb.take(key, 0); !ok {
			t.Fatalf("response %d of the burst dropped", i+1)
		}
	}
	ok, drops, started := tb.take(key, 0)
	if ok || drops != 1 || !started {
		t.Fatalf("11th response: ok %v drops %d started %v, want dropped, 1, started", ok, drops, started)
	}
	ok, drops, started = tb.take(key, 50)
	if ok || drops != 2 || started {
		t.Fatalf("after 50 ms: ok %v drops %d started %v, want dropped, 2, not started again", ok, drops, started)
	}
	if ok, _, _ := tb.take(key, 100); !ok {
		t.Fatal("after 100 ms at 10/s a response is due")
	}
	// A whole second of quiet fills the bucket: limiting starts afresh.
	for i := range 10 {
		if ok, _, _ := tb.take(key, 2000); !ok {
			t.Fatalf("after a quiet second, response %d dropped", i+1)
		}
	}
	if _, _, started := tb.take(key, 2000); !started {
		t.Fatal("a new spell of limiting is not said to start")
	}
}

// TestBucketTableKeepsTheBusy floods a small table with many more keys than
// it holds, each used once, while one key goes on over its rate: the busy
// key keeps its bucket (it stays limited) and the table does not grow.
func TestBucketTableKeepsTheBusy(t *testing.T) {
	tb := newBucketTable(64, 10)
	size := len(tb.sets)
	busy := tb.hash([]byte("attacker"))
	passed := 0
	for i := range 100_000 {
		now := int64(i / 100) // 100 keys and busy queries a millisecond
		if ok, _, _ := tb.take(tb.hash(fmt.Appendf(nil, "forged %d", i)), now); !ok {
			t.Fatalf("forged key %d dropped: a new key starts with a full bucket", i)
		}
		if ok, _, _ := tb.take(busy, now); ok {
			passed++
		}
	}
	// 1000 ms at 10/s plus the burst of 10.
	if passed > 20 {
		t.Errorf("the busy key passed %d of 100000 in a second: its bucket was evicted", passed)
	}
	if len(tb.sets) != size {
		t.Errorf("table grew from %d to %d sets", size, len(tb.sets))
	}
}

// reply builds the wire reply a zone gives to name/qtype, for classify.
func testReply(t *testing.T, z *zone, name string, qtype uint16) []byte {
	t.Helper()
	q, _ := query(name, qtype).Pack()
	out, _ := z.answer(nil, q, true)
	return out
}

// TestRRLBuckets checks what shares a bucket: one prefix and one kind of
// response (the same answer, NXDOMAIN of the zone, errors), names in any
// case.
func TestRRLBuckets(t *testing.T) {
	z := testZones(t)[0]
	cfg, _ := RRLConfig{Rate: 1, Slip: -1, TableSize: 1024}.populate()
	a := netip.MustParseAddr
	tests := []struct {
		name       string
		src1, src2 netip.Addr
		r1, r2     []byte
		same       bool
	}{
		{"same answer, same /24", a("192.0.2.1"), a("192.0.2.200"), testReply(t, z, testZone, dns.TypeA), testReply(t, z, "STREAM.farmlb.test.", dns.TypeA), true},
		{"same answer, other /24", a("192.0.2.1"), a("192.0.3.1"), testReply(t, z, testZone, dns.TypeA), testReply(t, z, testZone, dns.TypeA), false},
		{"other type", a("192.0.2.1"), a("192.0.2.1"), testReply(t, z, testZone, dns.TypeA), testReply(t, z, "_farm."+testZone, dns.TypeTXT), false},
		{"NXDOMAIN, any names", a("192.0.2.1"), a("192.0.2.1"), testReply(t, z, "x1."+testZone, dns.TypeA), testReply(t, z, "x2."+testZone, dns.TypeTXT), true},
		{"errors, any names", a("192.0.2.1"), a("192.0.2.1"), testReply(t, z, "example.com.", dns.TypeA), testReply(t, z, "example.org.", dns.TypeTXT), true},
		{"NODATA per name", a("192.0.2.1"), a("192.0.2.1"), testReply(t, z, "serverA."+testZone, dns.TypeMX), testReply(t, z, "serverB."+testZone, dns.TypeMX), false},
		{"same IPv6 /56", a("2001:db8:0:ff00::1"), a("2001:db8:0:ffaa::2"), testReply(t, z, testZone, dns.TypeA), testReply(t, z, testZone, dns.TypeA), true},
		{"other IPv6 /56", a("2001:db8:0:ff00::1"), a("2001:db8:0:fe00::1"), testReply(t, z, testZone, dns.TypeA), testReply(t, z, testZone, dns.TypeA), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRRL(cfg)
			if v, _, _ := r.check(tc.src1, tc.r1, false, 0); v != pass {
				t.Fatal("first response limited")
			}
			v, _, _ := r.check(tc.src2, tc.r2, false, 0)
			if got := v != pass; got != tc.same {
				t.Errorf("second response limited %v, want %v (same bucket)", got, tc.same)
			}
		})
	}
}

// TestRRLSlip checks that every Slip-th dropped response slips, and that a
// slipped reply is the question alone with TC set.
func TestRRLSlip(t *testing.T) {
	z := testZones(t)[0]
	reply := testReply(t, z, "_farm."+testZone, dns.TypeTXT)
	for _, slip := range []int{1, 2, 3, -1} {
		t.Run(fmt.Sprintf("slip=%d", slip), func(t *testing.T) {
			cfg, _ := RRLConfig{Rate: 1, Slip: slip, TableSize: 64}.populate()
			r := newRRL(cfg)
			src := netip.MustParseAddr("198.51.100.7")
			r.check(src, reply, false, 0)
			var got []verdict
			for range 6 {
				v, _, _ := r.check(src, reply, false, 0)
				got = append(got, v)
			}
			for i, v := range got {
				want := dropIt
				if slip > 0 && (i+1)%slip == 0 {
					want = slipIt
				}
				if v != want {
					t.Fatalf("drop %d: verdict %d, want %d (all: %v)", i+1, v, want, got)
				}
			}
		})
	}
	out := appendSlip(nil, reply)
	m := new(dns.Msg)
	if err := m.Unpack(out); err != nil || !m.Truncated || len(m.Answer)+len(m.Ns)+len(m.Extra) != 0 || len(m.Question) != 1 {
		t.Fatalf("slipped reply %v (%v): want the question alone with TC", m, err)
	}
	q, _ := query("_farm."+testZone, dns.TypeTXT).Pack()
	if len(out) > len(q) {
		t.Errorf("slipped reply of %d bytes to a query of %d: amplifies", len(out), len(q))
	}
}

// TestRRLConfig checks the bounds of the settings.
func TestRRLConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg  RRLConfig
		want string
	}{
		{RRLConfig{Rate: 2_000_000}, "rate"},
		{RRLConfig{IPv4Prefix: 33}, "IPv4 prefix"},
		{RRLConfig{IPv6Prefix: 129}, "IPv6 prefix"},
		{RRLConfig{TableSize: 3}, "table size"},
		{RRLConfig{Allow: []netip.Prefix{{}}}, "allow"},
	} {
		if _, err := tc.cfg.populate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one about %q", tc.cfg, err, tc.want)
		}
	}
	c, err := RRLConfig{}.populate()
	if d := DefaultRRLConfig(); err != nil || c.Rate != d.Rate || c.Slip != d.Slip || c.IPv4Prefix != d.IPv4Prefix || c.IPv6Prefix != d.IPv6Prefix || c.TableSize != d.TableSize {
		t.Errorf("zero config: %+v, %v", c, err)
	}
}

// udpBurst sends n copies of m from one socket to the server at once and
// reads the replies until none comes for a while; it returns how many came
// whole and how many truncated (TC, no records), and span, the time from the
// first query sent to the last reply read: the server refilled its buckets
// for at most that long.
func udpBurst(t *testing.T, s *Server, local string, m *dns.Msg, n int) (whole, truncated int, replies []*dns.Msg, span time.Duration) {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(local+":0")))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadBuffer(4 << 20)
	type reply struct {
		m   *dns.Msg
		err error
		at  time.Time
	}
	got := make(chan reply, n+1)
	go func() {
		defer close(got)
		buf := make([]byte, 65535)
		for {
			// The server answers within microseconds; a reply not here
			// in 500 ms was dropped.
			_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			k, err := c.Read(buf)
			if err != nil {
				return
			}
			r := new(dns.Msg)
			got <- reply{r, r.Unpack(buf[:k]), time.Now()}
		}
	}()
	to := s.Addr().(*net.UDPAddr)
	start := time.Now()
	for i := range n {
		m.Id = uint16(i + 1)
		q, _ := m.Pack()
		if _, err := c.WriteToUDP(q, to); err != nil {
			t.Fatal(err)
		}
	}
	for r := range got {
		if r.err != nil {
			t.Fatalf("reply does not parse: %v", r.err)
		}
		replies = append(replies, r.m)
		span = r.at.Sub(start)
		if r.m.Truncated && len(r.m.Answer) == 0 {
			truncated++
		} else if len(r.m.Answer) > 0 {
			whole++
		}
	}
	return whole, truncated, replies, span
}

// TestRRLOnTheWire floods a server from one address with the _farm TXT
// query: at Rate 20 it answers the burst and a few more in full, slips about
// half the rest, drops the others; TCP still answers in full; the metrics
// count it; an allowed prefix is never limited.
func TestRRLOnTheWire(t *testing.T) {
	cfg := testConfig(newTestSource(testList(t)))
	cfg.RRL = RRLConfig{Rate: 20, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}}
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	s := startServer(t, cfg)
	m := query("_farm."+testZone, dns.TypeTXT)
	whole, truncated, _, span := udpBurst(t, s, "127.0.0.1", m, 200)
	// 20 at once, plus 20 a second for as long as the burst lasted.
	if most := 20 + int(20*span.Seconds()) + 1; whole < 20 || whole > most {
		t.Errorf("%d whole answers out of 200 at 20/s in %v: want 20..%d", whole, span, most)
	}
	dropped := 200 - whole - truncated
	if limited := 200 - whole; truncated < limited/2-1 || truncated > limited/2+1 {
		t.Errorf("%d truncated, %d dropped of %d limited: want half of them slipped", truncated, dropped, limited)
	}
	if r := exchange(t, s, "tcp", query("_farm."+testZone, dns.TypeTXT)); len(r.Answer) != 1 {
		t.Errorf("over TCP: %v, want the answer whole", r)
	}
	if got := testutil.ToFloat64(collectorNamed(t, reg, "farmlb_dnsd_rrl_dropped_total")); int(got) != dropped {
		t.Errorf("farmlb_dnsd_rrl_dropped_total %v, want %d", got, dropped)
	}
	if got := testutil.ToFloat64(collectorNamed(t, reg, "farmlb_dnsd_rrl_slipped_total")); int(got) != truncated {
		t.Errorf("farmlb_dnsd_rrl_slipped_total %v, want %d", got, truncated)
	}
	if got := testutil.ToFloat64(collectorNamed(t, reg, "farmlb_dnsd_rrl_buckets_in_use")); got != 1 {
		t.Errorf("farmlb_dnsd_rrl_buckets_in_use %v, want 1", got)
	}
	if whole, _, _, _ := udpBurst(t, s, "127.0.0.2", m, 200); whole != 200 {
		t.Errorf("allowed prefix: %d whole answers of 200", whole)
	}
}

// collectorNamed gathers reg and returns a collector of the one metric
// called name, for testutil.ToFloat64.
func collectorNamed(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.Metric) == 1 {
			v := mf.Metric[0]
			var f float64
			switch {
			case v.Counter != nil:
				f = v.Counter.GetValue()
			case v.Gauge != nil:
				f = v.Gauge.GetValue()
			}
			return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "x", Help: "x"}, func() float64 { return f })
		}
	}
	t.Fatalf("no metric %s", name)
	return nil
}
