package dnsd

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/farmlb/farmlb/farm"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testSource is a farm.Source whose table a test sets: the seam between the
// mesh and dnsd.
type testSource struct {
	mu   sync.Mutex
	l    *farm.List
	subs map[chan struct{}]struct{}
}

func newTestSource(l *farm.List) *testSource {
	return &testSource{l: l, subs: map[chan struct{}]struct{}{}}
}

func (s *testSource) Table() *farm.List {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.l
}

func (s *testSource) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	s.subs[ch] = struct{}{}
	s.mu.Unlock()
	return ch, func() {
		s.mu.Lock()
		delete(s.subs, ch)
		s.mu.Unlock()
	}
}

func (s *testSource) Set(l *farm.List) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.l = l
	for ch := range s.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

const testZone = "stream.farmlb.test."

// testList is the patent's example farm with addresses, and a server of its
// own name, a DRAINING one and an IPv6 one.
func testList(t testing.TB) *farm.List {
	t.Helper()
	l, err := farm.ParseText([]byte(`# farm service=stream.farmlb.test
http://serverA.stream.farmlb.test:8080 UP 2963 A addrs=127.0.0.11
http://serverB.stream.farmlb.test:8080 DOWN 0 B addrs=127.0.0.12
http://serverN.stream.farmlb.test UP 2979 A addrs=127.0.0.13,fd00::13
https://serverD.stream.farmlb.test DRAINING 10 A addrs=127.0.0.14
`))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// bigList returns a farm of n UP servers in group A.
func bigList(t testing.TB, n int) *farm.List {
	t.Helper()
	l := &farm.List{Service: "stream.farmlb.test"}
	for i := 0; i < n; i++ {
		l.Servers = append(l.Servers, farm.Server{
			Name:     fmt.Sprintf("server%03d", i),
			URL:      fmt.Sprintf("http://server%03d.stream.farmlb.test:8080", i),
			Addrs:    []netip.Addr{netip.AddrFrom4([4]byte{127, 0, byte(1 + i/250), byte(1 + i%250)})},
			Status:   farm.StatusUp,
			Users:    i * 10,
			Priority: farm.PriorityHighest,
		})
	}
	if err := l.Validate(); err != nil {
		t.Fatal(err)
	}
	return l
}

// testConfig returns a config for the test zone with a nameserver at
// 127.0.0.1 and an injected clock.
func testConfig(src farm.Source) Config {
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.UDPSockets = 2
	cfg.Source = src
	cfg.Zone.Origin = "stream.farmlb.test"
	cfg.Zone.NameServers = []NameServer{{Name: "ns1", Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}}}
	cfg.Now = func() time.Time { return time.Date(2026, 11, 29, 14, 0, 0, 0, time.UTC) }
	return cfg
}

// startServer starts a server on 127.0.0.1:0 (UDP and TCP) and stops it when
// the test ends.
func startServer(t testing.TB, cfg Config) *Server {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(context.Background()) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return s
}

// exchange sends m to the server over net ("udp" or "tcp").
func exchange(t testing.TB, s *Server, network string, m *dns.Msg) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: 5 * time.Second, UDPSize: 65535}
	addr := s.Addr().String()
	if network == "tcp" {
		addr = s.TCPAddr().String()
	}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s exchange %v: %v", network, m.Question, err)
	}
	return r
}

// query builds a query with RD set, as a stub resolver sends it.
func query(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	return m
}

// rrStrings returns the records as zone-file lines with the names in lower
// case, for comparing sections.
func rrStrings(rrs []dns.RR) []string {
	out := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		if rr.Header().Rrtype == dns.TypeOPT {
			continue
		}
		out = append(out, strings.ToLower(strings.ReplaceAll(rr.String(), "\t", " ")))
	}
	return out
}

// sorted returns a sorted copy.
func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// norm normalises expected record lines as rrStrings does.
func norm(t testing.TB, lines ...string) []string {
	t.Helper()
	var rrs []dns.RR
	for _, ln := range lines {
		rr, err := dns.NewRR(ln)
		if err != nil {
			t.Fatalf("bad expected record %q: %v", ln, err)
		}
		rrs = append(rrs, rr)
	}
	return rrStrings(rrs)
}

// watchTables returns a channel that receives each table the server takes
// from its source from now on.
func (s *Server) watchTables(t testing.TB) <-chan *farm.List {
	ch := make(chan *farm.List, 64)
	s.buildMu.Lock()
	s.tableHook = func(l *farm.List) {
		select {
		case ch <- l:
		default:
			t.Error("table watch channel full")
		}
	}
	s.buildMu.Unlock()
	return ch
}

// waitTable waits until the server has taken table l.
func waitTable(t testing.TB, tables <-chan *farm.List, l *farm.List) {
	t.Helper()
	waitTableWhere(t, tables, func(got *farm.List) bool { return got == l })
}

// waitTableWhere waits until the server has taken a table for which ok holds.
func waitTableWhere(t testing.TB, tables <-chan *farm.List, ok func(*farm.List) bool) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case got := <-tables:
			if ok(got) {
				return
			}
		case <-timeout:
			t.Fatal("the server did not take the table within 10s")
		}
	}
}

func gaugeValue(t testing.TB, c prometheus.Collector) float64 {
	t.Helper()
	return testutil.ToFloat64(c)
}
