package dnsd

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/farmlb/farmlb/farm"
	"github.com/farmlb/farmlb/internal/farmtest"
)

// startUnbound runs Unbound on ip, with each zone stubbed to its dnsd
// (farmtest.StartUnbound, without validation).
func startUnbound(t *testing.T, ip string, stubs map[string]string) string {
	return farmtest.StartUnbound(t, ip, stubs, "")
}

// startServerOn starts a dnsd for zone on ip:0 answering from l, its metrics
// in reg.
func startServerOn(t *testing.T, ip, zone string, l *farm.List, reg *prometheus.Registry) *Server {
	t.Helper()
	cfg := testConfig(newTestSource(l))
	cfg.Registerer = reg
	cfg.Listen = net.JoinHostPort(ip, "0")
	cfg.Zone.Origin = zone
	cfg.Zone.NameServers = nil // ns1.<zone> at the listen address
	return startServer(t, cfg)
}

// TestThroughUnbound resolves the farm's names through a real recursive
// resolver with the zones delegated to dnsd (stub zones): the service name's
// A, _farm TXT, SRV, an NXDOMAIN, and a 100-server list that only TCP carries.
func TestThroughUnbound(t *testing.T) {
	const big = "big.farmlb.test."
	small := startServerOn(t, "127.0.0.21", testZone, testList(t), prometheus.NewRegistry())
	largeMetrics := prometheus.NewRegistry()
	large := startServerOn(t, "127.0.0.23", big, bigList(t, 100), largeMetrics)
	resolver := startUnbound(t, "127.0.0.22", map[string]string{
		testZone: small.Addr().String(),
		big:      large.Addr().String(),
	})

	tests := []struct {
		name    string
		network string
		qname   string
		qtype   uint16
		rcode   int
		check   func(t *testing.T, r *dns.Msg)
	}{
		{name: "service A", network: "udp", qname: "Stream.FarmLB.test.", qtype: dns.TypeA, check: func(t *testing.T, r *dns.Msg) {
			var got []string
			for _, rr := range r.Answer {
				got = append(got, rr.(*dns.A).A.String())
			}
			if want := []string{"127.0.0.11", "127.0.0.13"}; !slices.Equal(sorted(got), want) {
				t.Errorf("addresses %v, want %v", got, want)
			}
		}},
		{name: "_farm TXT", network: "udp", qname: "_farm." + testZone, qtype: dns.TypeTXT, check: func(t *testing.T, r *dns.Msg) {
			l := txtList(t, r)
			if len(l.Servers) != 4 || l.Servers[1].Status != farm.StatusDown {
				t.Errorf("list %+v, want the 4 servers with serverB DOWN", l.Servers)
			}
		}},
		{name: "SRV", network: "udp", qname: "_farmlb._tcp." + testZone, qtype: dns.TypeSRV, check: func(t *testing.T, r *dns.Msg) {
			var got []string
			for _, rr := range r.Answer {
				srv := rr.(*dns.SRV)
				got = append(got, fmt.Sprintf("%d %s", srv.Port, strings.ToLower(srv.Target)))
			}
			if want := []string{"80 servern." + testZone, "8080 servera." + testZone}; !slices.Equal(sorted(got), want) {
				t.Errorf("SRV %v, want %v", got, want)
			}
		}},
		{name: "NXDOMAIN", network: "udp", qname: "nosuch." + testZone, qtype: dns.TypeA, rcode: dns.RcodeNameError, check: func(t *testing.T, r *dns.Msg) {
			if len(r.Ns) != 1 || r.Ns[0].Header().Rrtype != dns.TypeSOA {
				t.Errorf("authority %v, want the SOA", r.Ns)
			}
		}},
		{name: "100-server list: truncated on UDP, whole over TCP", network: "tcp", qname: "_farm." + big, qtype: dns.TypeTXT, check: func(t *testing.T, r *dns.Msg) {
			if l := txtList(t, r); len(l.Servers) != 100 {
				t.Errorf("%d servers, want 100", len(l.Servers))
			}
			// Unbound got it from dnsd truncated over UDP, then over TCP.
			if n, _ := metricValue(t, largeMetrics, "farmlb_dnsd_truncated_total", nil); n < 1 {
				t.Error("dnsd sent no truncated answer: the list did not need TCP")
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &dns.Client{Net: tc.network, Timeout: 10 * time.Second}
			m := query(tc.qname, tc.qtype)
			m.SetEdns0(1232, false)
			r, _, err := c.Exchange(m, resolver)
			if err != nil {
				t.Fatalf("through unbound: %v", err)
			}
			if r.Rcode != tc.rcode {
				t.Fatalf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.rcode])
			}
			if !r.RecursionAvailable {
				t.Error("RA not set: the answer did not come from the resolver")
			}
			tc.check(t, r)
		})
	}
}

func txtList(t *testing.T, r *dns.Msg) *farm.List {
	t.Helper()
	if len(r.Answer) != 1 {
		t.Fatalf("%d answer records, want one TXT", len(r.Answer))
	}
	l, err := farm.ParseTXT(r.Answer[0].(*dns.TXT).Txt)
	if err != nil {
		t.Fatalf("TXT is not a farm list: %v", err)
	}
	return l
}
